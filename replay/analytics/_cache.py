"""The SQL cache: each journal's export kept in the journal directory, rebuilt when it grows.

``replaymm sql`` exports on the fly. The export is cached as ``analytics.duckdb`` inside the
journal directory (the journal code only ever looks at ``segment-*.rmj`` files) together with
a fingerprint of the segments it was built from (names, sizes, modification times) and of the
export code. A journal that grew, was repaired or rewritten no longer matches and is
re-exported; otherwise the cache is opened as is.

Several journals (a directory of sessions) are attached side by side and each table becomes
one view over all of them (``UNION ALL BY NAME``), so the ready-made views, which group by
``journal``, work unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import duckdb

from journal import JournalError, segment_paths

from ._export import export_duckdb
from ._tables import EXPORT_VERSION
from ._views import VIEWS, create_views

__all__ = ["CACHE_NAME", "TABLES", "cache_is_fresh", "connect", "ensure_cache", "find_journals"]

CACHE_NAME = "analytics.duckdb"
TABLES = (
    "instruments", "events", "book_top", "mids", "trades", "mark_prices", "klines", "intents", "orders",
    "order_events", "fills", "positions", "funding", "decisions", "alerts", "balances",
    "export_info",
)  # fmt: skip


def fingerprint(journal: Path) -> str:
    h = hashlib.sha256(EXPORT_VERSION.encode())
    # the views are created in the cache: a changed view rebuilds it too
    h.update(repr(sorted(VIEWS.items())).encode())
    for seg in segment_paths(journal):
        st = seg.stat()
        h.update(f"{seg.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:32]


def find_journals(path: Path) -> list[Path]:
    """``path`` itself if it is a journal, else the journals directly inside it, by name."""
    if not path.is_dir():
        raise FileNotFoundError(2, "no such journal directory", str(path))
    if any(path.glob("segment-*.rmj")):
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_dir() and any(p.glob("segment-*.rmj")))
    if not found:
        raise JournalError(f"{path} is neither a journal nor a directory of journals")
    names = [p.name for p in found]
    if len(set(names)) != len(names):  # cannot happen in one directory; kept for clarity
        raise JournalError(f"{path}: journals with the same name")
    return found


def cache_is_fresh(journal: Path) -> bool:
    cache = journal / CACHE_NAME
    if not cache.exists():
        return False
    try:
        con = duckdb.connect(str(cache), read_only=True)
        try:
            row = con.execute("SELECT fingerprint FROM export_info").fetchone()
        finally:
            con.close()
    except duckdb.Error:
        return False  # unreadable or from another version: rebuild
    return row is not None and row[0] == fingerprint(journal)


def ensure_cache(journal: Path, progress: Callable[[int], None] | None = None) -> Path:
    """The journal's cache, exported first if missing or stale."""
    cache = journal / CACHE_NAME
    if not cache_is_fresh(journal):
        export_duckdb(journal, cache, progress, fingerprint=fingerprint(journal))
    return cache


def connect(
    journals: list[Path], progress: Callable[[Path, int], None] | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with every table and view over ``journals``."""
    con = duckdb.connect()
    for i, j in enumerate(journals):
        cache = ensure_cache(j, None if progress is None else _bind(progress, j))
        con.execute(f"ATTACH '{_quote(cache)}' AS j{i} (READ_ONLY)")
    for table in TABLES:
        parts = [
            f"SELECT * REPLACE ('{_quote(j.resolve().name)}' AS journal) FROM j{i}.{table}"
            for i, j in enumerate(journals)
        ]
        con.execute(f"CREATE VIEW {table} AS " + " UNION ALL BY NAME ".join(parts))
    create_views(con)
    return con


def _bind(progress: Callable[[Path, int], None], journal: Path) -> Callable[[int], None]:
    return lambda n: progress(journal, n)


def _quote(value: object) -> str:
    return str(value).replace("'", "''")
