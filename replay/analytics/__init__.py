"""Analytics: journals as DuckDB tables, ready-made views, SQL, and an HTML report.

``export_duckdb`` / ``export_parquet`` write one journal's tables (see ``_tables.py`` for the
naming rules and README "Analysing with SQL" for every column); ``connect`` opens one or
several journals for SQL through a cache kept in each journal directory; ``write_report``
renders the self-contained HTML report. A backtest leaves its journal's columns next to it
(``_tail.py``, ``_sidecar.py``) so that an export need not decode the journal.

The names are imported on first use: the backtest imports ``_tail`` (stdlib only) and must
not pay for DuckDB and pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cache import CACHE_NAME, TABLES, cache_is_fresh, connect, ensure_cache, find_journals
    from ._export import ExportResult, export_duckdb, export_parquet, journal_tables
    from ._report import write_report
    from ._views import VIEW_DOCS, VIEWS

_WHERE = {
    "CACHE_NAME": "_cache",
    "TABLES": "_cache",
    "cache_is_fresh": "_cache",
    "connect": "_cache",
    "ensure_cache": "_cache",
    "find_journals": "_cache",
    "ExportResult": "_export",
    "export_duckdb": "_export",
    "export_parquet": "_export",
    "journal_tables": "_export",
    "write_report": "_report",
    "VIEWS": "_views",
    "VIEW_DOCS": "_views",
}

__all__ = [
    "CACHE_NAME",
    "TABLES",
    "VIEWS",
    "VIEW_DOCS",
    "ExportResult",
    "cache_is_fresh",
    "connect",
    "ensure_cache",
    "export_duckdb",
    "export_parquet",
    "find_journals",
    "journal_tables",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
