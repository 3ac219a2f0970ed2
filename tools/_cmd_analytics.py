"""``replaymm export``, ``replaymm sql`` and ``replaymm report``: journals as SQL tables."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ._cli import CONTEXT, fail, main
from ._console import console, err_console, fmt_rate, progress_bytes

_journal_arg = click.argument(
    "journal", metavar="JOURNAL", type=click.Path(exists=True, file_okay=False, path_type=Path)
)


def _bytes_of(journal: Path) -> int:
    return sum(p.stat().st_size for p in journal.glob("segment-*.rmj"))


@contextmanager
def _progress(journals: list[Path]) -> Iterator[Callable[[Path, int], None]]:
    """One bar over every journal's bytes that needs exporting."""
    from replay.analytics import cache_is_fresh

    stale = [j for j in journals if not cache_is_fresh(j)]
    sizes = {j: _bytes_of(j) for j in stale}
    done: dict[Path, int] = {}
    with progress_bytes("exporting", sum(sizes.values()), enabled=bool(stale)) as advance:

        def report(journal: Path, n: int) -> None:
            advance(n - done.get(journal, 0))
            done[journal] = n

        yield report


@main.command(context_settings=CONTEXT)
@_journal_arg
@click.option("--duckdb", "duckdb_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the tables and views to this DuckDB file (replaced if it exists).")  # fmt: skip
@click.option("--parquet", "parquet_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one Parquet file per table, plus views.sql, to this directory.")  # fmt: skip
def export(journal: Path, duckdb_file: Path | None, parquet_dir: Path | None) -> None:
    """Export a journal's events, orders, fills, positions, ... as tables, with the views.

    See README, "Analysing with SQL", for every table and column.
    """
    from replay.analytics import export_duckdb, export_parquet

    if (duckdb_file is None) == (parquet_dir is None):
        fail("give exactly one of --duckdb FILE or --parquet DIR")
    with progress_bytes("exporting", _bytes_of(journal)) as advance:
        seen = [0]

        def tick(n: int) -> None:
            advance(n - seen[0])
            seen[0] = n

        if duckdb_file is not None:
            r = export_duckdb(journal, duckdb_file, tick)
        else:
            assert parquet_dir is not None
            r = export_parquet(journal, parquet_dir, tick)
    source = (
        "its columns file" if r.columns == "used" else f"the journal (columns file {r.columns})"
    )
    console.print(
        f"[bold green]exported[/] {r.events:,} events of {journal} -> [bold]{r.out}[/] "
        f"in {r.read_s + r.write_s:.2f} s ({fmt_rate(r.events_per_s)} events/s; "
        f"read {r.read_s:.2f} s from {source}, write {r.write_s:.2f} s)"
    )
    console.print("  " + ", ".join(f"{name} {n:,}" for name, n in r.rows.items()))
    if r.torn:
        err_console.print(f"[yellow]note:[/] {r.torn}")


@main.command(context_settings=CONTEXT)
@_journal_arg
@click.argument("query")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (with a header) instead of a table.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of objects.")
def sql(journal: Path, query: str, as_csv: bool, as_json: bool) -> None:
    """Run a SQL query over a journal, or over every journal in a directory.

    The journal is exported on the fly and cached in it (analytics.duckdb), rebuilt when the
    journal has grown. Tables: instruments, events, book_top, trades, mark_prices, intents,
    orders, order_events, fills, positions, funding, decisions, alerts, balances; views:
    pnl_summary, pnl_by_hour, equity, fill_markouts, spread_capture, inventory,
    order_to_fill, quote_uptime, grid_slot_pnl, passive_fill_rate, risk_events,
    reconciliation. Every table has a `journal` column.

    \b
      replaymm sql runs/bt "SELECT * FROM pnl_summary"
      replaymm sql runs/ "SELECT journal, net_pnl FROM pnl_summary" --csv
    """
    import duckdb

    from replay.analytics import connect, find_journals

    if as_csv and as_json:
        fail("choose one of --csv and --json")
    journals = find_journals(journal)
    with _progress(journals) as report:
        con = connect(journals, report)
    try:
        rel = con.sql(query)
    except duckdb.Error as e:
        fail(f"SQL: {str(e).splitlines()[0]}")
    if rel is None:
        return  # a statement without a result
    columns, rows = rel.columns, rel.fetchall()
    if as_csv:
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows(rows)
    elif as_json:
        json.dump([dict(zip(columns, r)) for r in rows], sys.stdout, default=str, indent=1)
        sys.stdout.write("\n")
    else:
        _print_table(columns, rows)


def _cell(v: Any) -> str:
    from decimal import Decimal

    if isinstance(v, Decimal):
        return f"{v:f}"
    return "" if v is None else str(v)


def _print_table(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    from rich.table import Table

    t = Table(*columns, show_edge=False, header_style="bold")
    for r in rows[:10_000]:
        t.add_row(*(_cell(v) for v in r))
    console.print(t)
    more = " (showing 10,000; use --csv for all)" if len(rows) > 10_000 else ""
    err_console.print(f"{len(rows):,} rows{more}")


@main.command(context_settings=CONTEXT)
@_journal_arg
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The HTML file to write.")  # fmt: skip
def report(journal: Path, out: Path) -> None:
    """Write a self-contained HTML report (plots and tables) of a journal or directory.

    The page embeds plotly.js, so it opens offline: equity and PnL components, inventory,
    quotes vs mid with fills, markout curve, latency histogram, and the summary tables.
    """
    from replay.analytics import connect, find_journals, write_report

    journals = find_journals(journal)
    with _progress(journals) as progress:
        con = connect(journals, progress)
    write_report(con, out, f"replaymm report: {journal}")
    console.print(f"[bold green]report[/] -> [bold]{out}[/] ({out.stat().st_size / 1e6:.1f} MB)")
