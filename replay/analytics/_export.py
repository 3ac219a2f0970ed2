"""Journal -> DuckDB file or Parquet directory, in bulk through Arrow."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from replay._verify import gc_paused

from ._collect import collect
from ._tables import build_tables, derived
from ._views import VIEWS, create_views

__all__ = ["ExportResult", "export_duckdb", "export_parquet", "journal_tables"]


class ExportResult(msgspec.Struct):
    journal: str
    out: str
    events: int
    rows: dict[str, int]
    read_s: float  # decoding the journal into columns
    write_s: float  # Arrow -> DuckDB / Parquet
    torn: str | None = None

    @property
    def events_per_s(self) -> float:
        return self.events / max(self.read_s + self.write_s, 1e-9)


def journal_tables(
    journal: Path, progress: Callable[[int], None] | None = None, lazy: bool = False
) -> tuple[dict[str, pa.Table], int, str | None]:
    """(tables, events read, torn-tail description) of one journal, each table with its
    ``journal`` column first. ``lazy``: the columns computed from others (decimals, times,
    the journal's name) are ``derived`` placeholders, for DuckDB to compute."""
    with gc_paused():  # millions of small objects, none cyclic: the collector only slows us
        c = collect(journal, progress)
    name = journal.resolve().name
    tables = {}
    for tname, t in build_tables(c, lazy).items():
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
            "kind": [c.header.kind],
            "code_version": [c.header.code_version],
            "events": pa.array([len(c)], pa.int64()),
            "last_seq": pa.array([c.last_seq], pa.int64()),
            "torn_tail": pa.array([c.torn], pa.string()),
            "fingerprint": pa.array([None], pa.string()),
        }
    )
    return tables, len(c), c.torn


def export_duckdb(
    journal: Path,
    out: Path,
    progress: Callable[[int], None] | None = None,
    fingerprint: str | None = None,
) -> ExportResult:
    """Write every table and view of ``journal`` to the DuckDB file ``out`` (replaced
    atomically: a reader never sees a half-written file). ``fingerprint`` is stored in
    ``export_info`` for the SQL cache."""
    t0 = time.perf_counter()
    tables, events, torn = journal_tables(journal, progress, lazy=True)
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
        for name, t in tables.items():
            _write_table(con, name, t)
        create_views(con)
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
    )


def export_parquet(
    journal: Path, out: Path, progress: Callable[[int], None] | None = None
) -> ExportResult:
    """One Parquet file per table in the directory ``out``, plus ``views.sql`` which, run
    inside ``out`` (``duckdb -c ".read views.sql"``), defines the tables and the views."""
    t0 = time.perf_counter()
    tables, events, torn = journal_tables(journal, progress)
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
    )


def _write_table(con: duckdb.DuckDBPyConnection, name: str, t: pa.Table) -> None:
    """``t`` as the table ``name``: its columns stored, its ``derived`` placeholders as
    VIRTUAL generated columns (computed when read: not converted, compressed nor stored)."""
    stored = [f.name for f in t.schema if not (f.metadata and b"sql" in f.metadata)]
    con.register("arrow_in", t.select(stored))
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE arrow_in)").fetchall())
    cols = []
    for f in t.schema:
        if f.name in types:
            ty = types[f.name]
            # a dictionary-encoded column (the journal's name in export_info) as plain text
            cols.append(f'"{f.name}" {"VARCHAR" if ty.startswith("ENUM") else ty}')
        else:
            meta = f.metadata
            cols.append(f'"{f.name}" {meta[b"sql_type"].decode()} AS ({meta[b"sql"].decode()})')
    con.execute(f"CREATE TABLE {name} ({', '.join(cols)})")
    names = ", ".join(f'"{n}"' for n in stored)
    con.execute(f"INSERT INTO {name} ({names}) SELECT {names} FROM arrow_in")
    con.unregister("arrow_in")
