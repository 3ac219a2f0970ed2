"""``replaymm import ...``: recorded data -> journals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._cli import CONTEXT, _Group, force_option, main, out_option
from ._console import console, fmt_rate

# ---------------------------------------------------------------------------------------------
# import


@main.group("import", cls=_Group, context_settings=CONTEXT)
def import_group() -> None:
    """Turn recorded market data into a journal (one event per message or row)."""


_strict_option = click.option(
    "--strict",
    is_flag=True,
    help="Stop at the first malformed line instead of counting and skipping it.",
)
_xinfo_option = click.option(
    "--exchange-info",
    "exchange_info",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Saved GET /fapi/v1/exchangeInfo answer with the symbols' filters "
    "(tick/step/min notional). Default: a built-in table "
    "(BTCUSDT, ETHUSDT, XRPUSDT, BTCUSDC, ETHUSDC).",
)
_files_arg = click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)


def _print_import(report: Any) -> None:
    console.print(
        f"[bold green]imported[/] {report.lines:,} lines -> {report.events:,} events "
        f"into [bold]{report.out}[/] in {report.seconds:.2f} s ({fmt_rate(report.lines_per_s)} lines/s)"
    )
    console.print("  instruments: " + ", ".join(report.instruments))
    console.print("  events: " + ", ".join(f"{k} {v:,}" for k, v in report.by_type.items()))
    if report.skipped:
        console.print(
            "  skipped (not used): " + ", ".join(f"{k} {v:,}" for k, v in report.skipped.items())
        )
    if report.malformed:
        console.print(
            f"  [yellow]malformed lines: {report.malformed:,}[/] (first {len(report.examples)} below; --strict stops at the first)"
        )
        for m in report.examples:
            console.print(f"    {m.file}:{m.line}: {m.error}\n      {m.text[:120]}")


def _import_progress(files: tuple[Path, ...]) -> Any:
    from ._console import progress_bytes

    return progress_bytes("importing", sum(f.stat().st_size for f in files))


@import_group.command("binance-ws", context_settings=CONTEXT)
@_files_arg
@out_option
@_xinfo_option
@click.option(
    "--infer-filters",
    is_flag=True,
    help="Guess tick and step sizes from the recording itself (for old recordings "
    "whose exchangeInfo is not at hand).",
)
@click.option(
    "--as",
    "renames",
    multiple=True,
    metavar="RECORDED=SYMBOL",
    help="Import a recorded symbol as another contract, with that contract's rules and name: "
    "--as BTCUSDT=BTCUSDC backtests a USDC-M config on the recorded USDT-M market (a proxy: "
    "the two perpetuals track each other, their books and flows differ).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=0),
    default=None,
    help="Processes that parse the JSON (default: every core for files of 1 MB or more; "
    "1 = no worker processes, e.g. beside a live bot on a small VPS). The journal is the "
    "same either way.",
)
@_strict_option
@force_option
def import_binance_ws(
    files: tuple[Path, ...],
    out: Path,
    exchange_info: tuple[Path, ...],
    infer_filters: bool,
    renames: tuple[str, ...],
    jobs: int | None,
    strict: bool,
    force: bool,
) -> None:
    """Recorded Binance USDⓈ-M WebSocket files -> a market-data journal.

    Reads hftbacktest-collector files (`<recv ts> <json>` lines, gzip or plain, with the
    REST depth snapshot line) and cryptofeed captures (`<secs>: <json>`, and their REST
    snapshot logs). Several files are merged by receive time.
    """
    from .import_ws import import_binance_ws as run

    mapping: dict[str, str] = {}
    for r in renames:
        recorded, sep, symbol = r.upper().partition("=")
        if not sep or not recorded or not symbol:
            raise click.BadParameter(
                f"{r!r}: write RECORDED=SYMBOL, e.g. BTCUSDT=BTCUSDC", param_hint="--as"
            )
        mapping[recorded] = symbol
    with _import_progress(files) as tick:
        report = run(
            list(files),
            out,
            exchange_info=list(exchange_info),
            infer_filters=infer_filters,
            strict=strict,
            overwrite=force,
            progress=tick,
            renames=mapping,
            jobs=jobs,
        )
    _print_import(report)


@import_group.command("binance-klines", context_settings=CONTEXT)
@_files_arg
@click.option("--symbol", required=True, help="e.g. BTCUSDT")
@click.option("--interval", required=True, help="Binance interval: 1m, 5m, 1h, ...")
@out_option
@_xinfo_option
@_strict_option
@force_option
def import_binance_klines(
    files: tuple[Path, ...],
    symbol: str,
    interval: str,
    out: Path,
    exchange_info: tuple[Path, ...],
    strict: bool,
    force: bool,
) -> None:
    """Kline CSVs (Binance public archive, with or without header; or freqtrade) -> a journal."""
    from .import_csv import import_klines

    with _import_progress(files) as tick:
        report = import_klines(
            list(files),
            out,
            symbol=symbol,
            interval=interval,
            exchange_info=list(exchange_info),
            strict=strict,
            overwrite=force,
            progress=tick,
        )
    _print_import(report)


@import_group.command("binance-trades", context_settings=CONTEXT)
@_files_arg
@click.option("--symbol", required=True, help="e.g. BTCUSDT")
@out_option
@_xinfo_option
@_strict_option
@force_option
def import_binance_trades(
    files: tuple[Path, ...],
    symbol: str,
    out: Path,
    exchange_info: tuple[Path, ...],
    strict: bool,
    force: bool,
) -> None:
    """Trade CSVs (Binance archive aggTrades / trades, or ccxt/freqtrade exports) -> a journal."""
    from .import_csv import import_trades

    with _import_progress(files) as tick:
        report = import_trades(
            list(files),
            out,
            symbol=symbol,
            exchange_info=list(exchange_info),
            strict=strict,
            overwrite=force,
            progress=tick,
        )
    _print_import(report)


@import_group.command("tardis", context_settings=CONTEXT)
@_files_arg
@out_option
@_xinfo_option
@_strict_option
@force_option
def import_tardis(
    files: tuple[Path, ...], out: Path, exchange_info: tuple[Path, ...], strict: bool, force: bool
) -> None:
    """tardis.dev CSVs (trades, quotes, book_snapshot_N) -> a journal."""
    from .import_csv import import_tardis as run

    with _import_progress(files) as tick:
        report = run(
            list(files),
            out,
            exchange_info=list(exchange_info),
            strict=strict,
            overwrite=force,
            progress=tick,
        )
    _print_import(report)
