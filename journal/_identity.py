"""Version and code identity written into journal headers."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from ._version import VERSION

__all__ = ["code_digest", "code_version"]


def code_version() -> str:
    return VERSION


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
