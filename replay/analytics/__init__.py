"""Analytics: journals as DuckDB tables, ready-made views, SQL, and an HTML report.

``export_duckdb`` / ``export_parquet`` write one journal's tables (see ``_tables.py`` for the
naming rules and README "Analysing with SQL" for every column); ``connect`` opens one or
several journals for SQL through a cache kept in each journal directory; ``write_report``
renders the self-contained HTML report.
"""

from ._cache import CACHE_NAME, TABLES, cache_is_fresh, connect, ensure_cache, find_journals
from ._export import ExportResult, export_duckdb, export_parquet, journal_tables
from ._report import write_report
from ._views import VIEW_DOCS, VIEWS

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
