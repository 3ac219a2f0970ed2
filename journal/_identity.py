"""Version and code identity written into journal headers."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import metadata
from pathlib import Path

__all__ = ["code_digest", "code_version"]


@cache
def code_version() -> str:
    try:
        return metadata.version("replaymm")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@cache
def code_digest() -> str:
    """Hash of the engine's source: two journals with the same digest ran the same reducer."""
    import engine

    root = Path(engine.__file__).parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]
