"""``replaymm backtest`` and ``replaymm sweep``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from ._cli import CONTEXT, fail, force_option, main
from ._console import console, err_console, fmt_money, fmt_rate, progress_count

_set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set strategy.offset_ticks=3 (repeatable).",
)


def _load(config: Path, overrides: tuple[str, ...]) -> dict[str, Any]:
    from ._config import load_config, parse_config, set_config_value

    cfg = load_config(config)
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq:
            fail(f"--set {item!r}: expected KEY=VALUE, e.g. strategy.offset_ticks=3")
        cfg = set_config_value(cfg, key.strip(), value)
    return parse_config(cfg, str(config))


def _market_journal(data: Path, scratch: Path) -> Path:
    """``data`` as a journal: a journal directory as is, a recorded file imported on the fly."""
    if data.is_dir():
        return data
    from .import_ws import import_binance_ws

    out = scratch / "market"
    report = import_binance_ws([data], out)
    err_console.print(
        f"imported {data.name}: {report.lines:,} lines in {report.seconds:.2f} s (scratch journal)"
    )
    return out


@main.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "-d",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Market data: a journal (from `replaymm import`, or a live/paper/backtest journal for a "
    "counterfactual run), or a recorded Binance WebSocket file, imported on the fly.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    help="The journal directory to create (default: no journal, summary only).",
)
@click.option(
    "--columns/--no-columns",
    default=True,
    show_default=True,
    help="With --out, also leave the export's columns next to the journal (built by a second "
    "process while the run goes; `export` and `sql` then load them instead of decoding the "
    "journal). Runs shorter than ~130k market events build none.",
)
@_set_option
@force_option
def backtest(
    config: Path,
    data: Path,
    out: Path | None,
    columns: bool,
    overrides: tuple[str, ...],
    force: bool,
) -> None:
    """Run CONFIG's strategy over recorded market data with the simulated exchange.

    The simulated exchange (section `backtest:` of the config) has queue positions, latency,
    Binance's filters, rate limits and error codes, maker/taker fees and funding. With --out,
    everything (market events, the exchange's answers, the strategy's intents, money events)
    goes to a journal that `replaymm replay OUT --verify` re-runs bit for bit.

    When --data is a journal of a real (live, paper) run, the run is counterfactual: its
    market events are replayed under CONFIG and the result is compared with what happened.
    """
    from journal import read_header
    from replay import actual_run, compare, run_backtest

    cfg = _load(config, overrides)
    if not data.is_dir():
        # a recorded file: parsed on the fly straight into the backtest (no scratch journal)
        from .import_ws import RecordedStream

        stream = RecordedStream([data])
        with progress_count("backtest", max(1, data.stat().st_size // 38)) as tick:
            result = run_backtest(
                cfg, stream, out, overwrite=force, progress=tick, columns=None if columns else False
            )
        if stream.report is not None:
            err_console.print(
                f"read {data.name}: {stream.report.lines:,} lines, parsed on the fly "
                f"({stream.report.malformed:,} malformed)"
            )
        _print_backtest(result, out)
    else:
        header = read_header(data)
        total = max(1, sum(p.stat().st_size for p in data.glob("segment-*.rmj")) // 40)
        with progress_count("backtest", total) as tick:
            result = run_backtest(
                cfg, data, out, overwrite=force, progress=tick, columns=None if columns else False
            )
        _print_backtest(result, out)
        if header.config:
            actual = actual_run(data)
            if actual is not None:
                _print_comparison(
                    header.kind, compare(actual, result.summary, result.inventory_path)
                )
    if out:
        console.print(f"  verify it: [bold]replaymm replay {out} --verify[/]")


def _print_backtest(result: Any, out: Path | None) -> None:
    where = f" in [bold]{out}[/]" if out else ""
    console.print(
        f"[bold green]backtest[/] {result.events_in:,} market events -> {result.events_out:,} events, "
        f"{result.intents:,} intents{where} ({result.seconds:.2f} s, {fmt_rate(result.events_per_s)} "
        "events/s)"
    )
    print_summary(result.summary)


def print_summary(summary: Any) -> None:
    from rich.table import Table

    quotes = sorted({i.quote_asset for i in summary.instruments})
    t = Table(
        title=f"summary (money in {', '.join(quotes) or 'quote asset'})",
        title_justify="left",
        show_edge=False,
    )
    cols = (
        "symbol",
        "position",
        "spread capture",
        "inventory PnL",
        "fees",
        "funding",
        "net PnL",
        "fills b/s",
        "maker/taker",
        "volume",
        "max DD",
        "max inv",
    )
    for col in cols:
        t.add_column(col, justify="right")
    for i in summary.instruments:
        t.add_row(
            i.symbol,
            f"{i.position}",
            fmt_money(i.spread_capture),
            fmt_money(i.inventory_pnl),
            fmt_money(i.fees),
            fmt_money(i.funding),
            f"[bold]{fmt_money(i.net_pnl)}[/]",
            f"{i.buy_fills:,}/{i.sell_fills:,}",
            f"{i.maker_fills:,}/{i.taker_fills:,}",
            f"{fmt_money(i.quote_volume, 0)}",
            fmt_money(i.max_drawdown),
            f"{i.max_inventory}",
        )
    console.print(t)
    rejects = ", ".join(f"{code}: {n:,}" for code, n in summary.rejects.items()) or "none"
    line = (
        f"  orders placed {summary.orders_placed:,}, cancels {summary.cancels_sent:,}, fills {summary.fills:,}, "
        f"rejects by code {rejects}; alerts {summary.alerts:,}; funding settlements {summary.funding_events}; "
        f"book gaps {summary.book_gaps}"
    )
    if summary.bbo_checks:
        line += f"; book vs bookTicker agreement {summary.bbo_agree}/{summary.bbo_checks}"
    console.print(line)


def _num(text: str) -> str:
    """Decimals with 4 places, integers as they are."""
    from decimal import Decimal, InvalidOperation

    try:
        d = Decimal(text)
    except InvalidOperation:
        return text
    return text if "." not in text and "E" not in text else fmt_money(d)


def _print_comparison(kind: str, cmp: Any) -> None:
    from rich.table import Table

    t = Table(
        title=f"counterfactual: this config vs what the {kind} run did",
        title_justify="left",
        show_edge=False,
    )
    for col in ("", "actual", "this config", "difference"):
        t.add_column(col, justify="right")
    for row in cmp.rows:
        t.add_row(row[0], *(_num(x) for x in row[1:]))
    console.print(t)
    console.print(
        f"  inventory paths (sampled each second): RMSE {cmp.inventory_rmse:.1f} lots, correlation {cmp.inventory_corr:.2f}"
    )


# ---------------------------------------------------------------------------------------------
# sweep


def _parse_axes(items: tuple[str, ...]) -> dict[str, list[Any]]:
    import yaml

    from ._config import _DecimalLoader

    axes: dict[str, list[Any]] = {}
    for item in items:
        key, eq, values = item.partition("=")
        if not eq or not values:
            fail(f"--set {item!r}: expected KEY=V1,V2,... e.g. strategy.offset_ticks=1,2,3")
        axes[key.strip()] = [yaml.load(v, Loader=_DecimalLoader) for v in values.split(",")]
    return axes


@main.command(context_settings=CONTEXT)
@click.argument(
    "config", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False
)
@click.option(
    "--data",
    "-d",
    type=click.Path(exists=True, path_type=Path),
    help="Market data journal (or recording).",
)
@click.option(
    "--set",
    "axes",
    multiple=True,
    metavar="KEY=V1,V2,...",
    help="A swept parameter and its values (repeatable; every combination runs).",
)
@click.option(
    "--jobs", "-j", type=click.IntRange(1, 256), help="Parallel processes (default: all cores)."
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("sweep.duckdb"),
    show_default=True,
    help="DuckDB file that receives one row per run (table `runs`).",
)
@click.option(
    "--top",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Rows shown, best net PnL first.",
)
@click.option(
    "--rerun",
    type=int,
    metavar="RUN",
    help="Re-run one stored run of the last sweep in --results and check its digest.",
)
def sweep(
    config: Path | None,
    data: Path | None,
    axes: tuple[str, ...],
    jobs: int | None,
    results: Path,
    top: int,
    rerun: int | None,
) -> None:
    """Backtest every combination of --set values over --data, in parallel; rank the results.

    Each run is deterministic; its row in --results keeps the full config and the digest of
    everything the run produced, so `replaymm sweep --rerun N --results F` repeats it alone
    and checks it gives the same digest.

    \b
    Example:
      replaymm sweep configs/simple-btcusdt.yaml --data runs/btc \\
          --set strategy.offset_ticks=0,1,2,4 --set backtest.queue.model=power,risk_averse
    """
    import os
    import time

    from replay import run_backtest
    from replay._sweep import expand_grid, load_row, run_sweep, write_results

    if rerun is not None:
        cfg, stored_data, digest = load_row(results, rerun)
        with tempfile.TemporaryDirectory(prefix="replaymm-") as scratch:
            market = _market_journal(Path(stored_data), Path(scratch))
            r = run_backtest(cfg, market, None)
        same = r.digest == digest
        console.print(
            f"run {rerun}: digest {r.digest} {'[bold green]matches' if same else '[bold red]DIFFERS from'} "
            f"the stored {digest}[/]; net PnL {r.summary.net_pnl}"
        )
        if not same:
            raise SystemExit(1)
        return
    if config is None or data is None:
        fail("give CONFIG and --data (or --rerun RUN --results FILE)")
    base = _load(config, ())
    grid_axes = _parse_axes(axes)
    if not grid_axes:
        fail("nothing to sweep: add --set KEY=V1,V2,...")
    grid = expand_grid(base, grid_axes)
    from ._config import parse_config

    for _, cfg in grid:
        parse_config(cfg, str(config))  # every combination is valid before anything runs
    jobs = jobs or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="replaymm-") as scratch:
        market = _market_journal(data, Path(scratch))
        console.print(
            f"[bold]sweep[/]: {len(grid)} runs of {config.name} over {data}, {min(jobs, len(grid))} processes"
        )
        with progress_count("sweep", len(grid)) as tick:
            rows, seconds = run_sweep(grid, market, jobs=jobs, progress=tick)
        sweep_id = time.strftime(
            "%Y%m%dT%H%M%S", time.gmtime()
        )  # a label for the rows, not an input
        write_results(rows, results, sweep_id=sweep_id, data=str(data.resolve()))
    busy = sum(r.seconds for r in rows)
    _print_ranking(rows, list(grid_axes), top)
    console.print(
        f"  {len(rows)} runs in {seconds:.1f} s wall, {busy:.1f} s of backtests: {busy / seconds:.2f}x parallel; "
        f"results in [bold]{results}[/] (table runs, sweep_id {sweep_id})"
    )
    console.print(f"  re-run one alone: [bold]replaymm sweep --rerun N --results {results}[/]")


def _print_ranking(rows: list[Any], names: list[str], top: int) -> None:
    from rich.table import Table

    t = Table(title="best net PnL first", title_justify="left", show_edge=False)
    for col in (
        "run",
        *names,
        "net PnL",
        "spread capture",
        "inventory",
        "fees",
        "fills",
        "max DD",
        "digest",
    ):
        t.add_column(col, justify="right")
    for r in sorted(rows, key=lambda r: -r.net_pnl)[:top]:
        t.add_row(
            str(r.run),
            *(str(r.params[n]) for n in names),
            f"{r.net_pnl:,.4f}",
            f"{r.spread_capture:,.4f}",
            f"{r.inventory_pnl:,.4f}",
            f"{r.fees:,.4f}",
            f"{r.fills:,}",
            f"{r.max_drawdown:,.4f}",
            r.digest,
        )
    console.print(t)
