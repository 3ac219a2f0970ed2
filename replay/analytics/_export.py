"""Journal -> DuckDB file or Parquet directory, in bulk through Arrow."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from journal import segment_paths
from replay._verify import gc_paused

from ._collect import collect
from ._sidecar import read_columns
from ._tables import base_tables, derived, finish_tables
from ._views import VIEWS, create_views

__all__ = ["ExportResult", "export_duckdb", "export_parquet", "journal_tables"]


class ExportResult(msgspec.Struct):
    journal: str
    out: str
    events: int
    rows: dict[str, int]
    read_s: float  # decoding the journal into columns (or reading its columns file)
    write_s: float  # Arrow -> DuckDB / Parquet
    torn: str | None = None
    #: "used" when the backtest's columns file was read instead of the journal, else why not
    columns: str = ""

    @property
    def events_per_s(self) -> float:
        return self.events / max(self.read_s + self.write_s, 1e-9)


def journal_tables(
    journal: Path,
    progress: Callable[[int], None] | None = None,
    lazy: bool = False,
    columns: bool = True,
) -> tuple[dict[str, pa.Table], int, str | None]:
    """(tables, events read, torn-tail description) of one journal, each table with its
    ``journal`` column first. ``lazy``: the columns computed from others (decimals, times,
    the journal's name) are ``derived`` placeholders, for DuckDB to compute. ``columns``:
    start from the journal's columns file when it matches the journal (``_sidecar.py``)."""
    tables, events, torn, _ = _journal_tables(journal, progress, lazy, columns)
    return tables, events, torn


def _journal_tables(
    journal: Path, progress: Callable[[int], None] | None, lazy: bool, columns: bool
) -> tuple[dict[str, pa.Table], int, str | None, str]:
    found, why = read_columns(journal) if columns else (None, "not asked")
    if found is not None:
        base, instruments = found.base, found.instruments
        kind, code_version = found.kind, found.code_version
        events, last_seq, torn = found.events, found.last_seq, None
        if progress is not None:
            progress(sum(p.stat().st_size for p in segment_paths(journal)))
    else:
        with gc_paused():  # millions of small objects, none cyclic: the collector only slows us
            c = collect(journal, progress)
        base, instruments = base_tables(c), c.instruments
        kind, code_version = c.header.kind, c.header.code_version
        events, last_seq, torn = len(c), c.last_seq, c.torn
    name = journal.resolve().name
    tables = {}
    for tname, t in finish_tables(base, instruments, lazy).items():
        if lazy:
            field, col = derived(t.num_rows, "VARCHAR", "'" + name.replace("'", "''") + "'")
            tables[tname] = t.add_column(0, field.with_name("journal"), col)
            continue
        col = pa.DictionaryArray.from_arrays(
            pa.repeat(pa.scalar(0, pa.int32()), t.num_rows), pa.array([name])
        )
        tables[tname] = t.add_column(0, "journal", col)
    tables["export_info"] = pa.table(
        {
            "journal": pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), [name]),
            "path": [str(journal.resolve())],
            "kind": [kind],
            "code_version": [code_version],
            "events": pa.array([events], pa.int64()),
            "last_seq": pa.array([last_seq], pa.int64()),
            "torn_tail": pa.array([torn], pa.string()),
            "fingerprint": pa.array([None], pa.string()),
        }
    )
    return tables, events, torn, why


def export_duckdb(
    journal: Path,
    out: Path,
    progress: Callable[[int], None] | None = None,
    fingerprint: str | None = None,
    columns: bool = True,
) -> ExportResult:
    """Write every table and view of ``journal`` to the DuckDB file ``out`` (replaced
    atomically: a reader never sees a half-written file). ``fingerprint`` is stored in
    ``export_info`` for the SQL cache. ``columns``: start from the backtest's columns file
    when it matches the journal exactly (else, or when False, decode the journal)."""
    t0 = time.perf_counter()
    tables, events, torn, why = _journal_tables(journal, progress, True, columns)
    info = tables["export_info"]
    tables["export_info"] = info.set_column(
        info.schema.get_field_index("fingerprint"),
        "fingerprint",
        pa.array([fingerprint], pa.string()),
    )
    t1 = time.perf_counter()
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        _write_tables(con, tables)
        con.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(
        str(journal),
        str(out),
        events,
        {n: t.num_rows for n, t in tables.items()},
        t1 - t0,
        time.perf_counter() - t1,
        torn,
        why,
    )


def export_parquet(
    journal: Path,
    out: Path,
    progress: Callable[[int], None] | None = None,
    columns: bool = True,
) -> ExportResult:
    """One Parquet file per table in the directory ``out``, plus ``views.sql`` which, run
    inside ``out`` (``duckdb -c ".read views.sql"``), defines the tables and the views."""
    t0 = time.perf_counter()
    tables, events, torn, why = _journal_tables(journal, progress, False, columns)
    t1 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    lines = ["-- replaymm export: tables over the Parquet files next to this file, then views"]
    for name, t in tables.items():
        t = t.set_column(0, "journal", t["journal"].cast(pa.string()))
        pq.write_table(t, out / f"{name}.parquet", compression="zstd")
        lines.append(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM '{name}.parquet';")
    lines += [f"CREATE OR REPLACE VIEW {n} AS {sql.strip()};" for n, sql in VIEWS.items()]
    (out / "views.sql").write_text("\n".join(lines) + "\n")
    return ExportResult(
        str(journal),
        str(out),
        events,
        {n: t.num_rows for n, t in tables.items()},
        t1 - t0,
        time.perf_counter() - t1,
        torn,
        why,
    )


def _write_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
    """Every table as a view over its stored columns, then the ready-made views; one
    transaction.

    Why views: DuckDB checks a VIRTUAL generated column at every INSERT by computing it for
    each 2,048-row chunk, which cost a third of the write; a view computes the same
    expression only when it is read. The stored columns live in the schema ``raw`` (same
    table names); a dictionary column (an event's type name) is stored as its small integer
    codes and named in the view from a list literal (an Arrow dictionary becomes a DuckDB
    ENUM on the way in, which costs as much as the rest of the column)."""
    con.execute("BEGIN")
    con.execute("CREATE SCHEMA raw")
    for name, t in tables.items():
        stored: dict[str, Any] = {}
        select = []
        for f, col in zip(t.schema, t.columns):
            q = '"' + f.name.replace('"', '""') + '"'
            meta = f.metadata or {}
            if b"sql" in meta:
                sql, ty = meta[b"sql"].decode(), meta[b"sql_type"].decode()
                select.append(f"CAST(({sql}) AS {ty}) AS {q}")
            elif pa.types.is_dictionary(f.type):
                codes, values = _codes(col)
                stored[f.name] = codes
                names = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
                select.append(f"CAST(([{names}])[{q} + 1] AS VARCHAR) AS {q}")
            else:
                stored[f.name] = col
                select.append(q)
        con.register("arrow_in", pa.table(stored) if stored else pa.table({"_": pa.nulls(0)}))
        con.execute(f"CREATE TABLE raw.{name} AS SELECT * FROM arrow_in")
        con.unregister("arrow_in")
        con.execute(f"CREATE VIEW {name} AS SELECT {', '.join(select)} FROM raw.{name}")
    create_views(con)
    con.execute("COMMIT")


def _codes(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, list[Any]]:
    """A dictionary column as (its integer codes, the values they stand for)."""
    col = col.unify_dictionaries()
    if not col.num_chunks:
        return pa.chunked_array([], col.type.index_type), []
    return pa.chunked_array([c.indices for c in col.chunks]), col.chunk(0).dictionary.to_pylist()
