"""``replaymm``: the command line.

Every command prints what it did and where its output is. Errors are one line saying what
is wrong and what to do (``--debug`` shows the traceback). Heavy imports happen inside the
commands so ``replaymm --help`` and short commands start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from ._console import console, err_console, fmt_money, fmt_rate

__all__ = ["main"]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Fail(click.ClickException):
    """An error already phrased for the trader."""

    def show(self, file: Any = None) -> None:
        err_console.print(f"[bold red]error:[/] {self.message}")


def _fail(message: str, code: int = 2) -> NoReturn:
    e = _Fail(message)
    e.exit_code = code
    raise e


class _Group(click.Group):
    """Turns the project's known errors into one clear line."""

    def invoke(self, ctx: click.Context) -> Any:
        from adapters.binance import UnknownSymbol
        from engine import ConfigError, EngineError
        from journal import JournalError
        from replay import ReplayError

        from ._import_common import ImportFailed

        known = (
            ConfigError,
            JournalError,
            ReplayError,
            ImportFailed,
            EngineError,
            UnknownSymbol,
            FileNotFoundError,
            PermissionError,
            IsADirectoryError,
            NotADirectoryError,
        )
        try:
            return super().invoke(ctx)
        except known as e:
            if ctx.meta.get("debug"):
                raise
            _fail(str(e) if not isinstance(e, OSError) else f"{e.strerror}: {e.filename}")
        except (
            click.ClickException,
            click.exceptions.Exit,
            click.exceptions.Abort,
            KeyboardInterrupt,
        ):
            raise
        except Exception as e:
            if ctx.meta.get("debug"):
                raise
            _fail(f"unexpected {type(e).__name__}: {e} (rerun with --debug for the traceback)", 1)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="replaymm")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """replaymm: a deterministic market-making engine for Binance USDⓈ-M / USDC-M perpetuals.

    Every market, order and timer event is written to a journal and applied by a pure
    reducer, so any run can be replayed bit for bit, backtested and queried with SQL.

    Start with `replaymm demo`. Typical work:

    \b
      replaymm import binance-ws btcusdt_20240808.gz --out runs/btc
      replaymm backtest configs/simple-btcusdt.yaml --data runs/btc --out runs/bt
      replaymm replay runs/bt --verify
      replaymm replay runs/bt --until 5000 --show
    """
    ctx.meta["debug"] = debug


# ---------------------------------------------------------------------------------------------
# demo


@main.command(context_settings=CONTEXT)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Directory for the demo's journals.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(1, 3600),
    default=60,
    show_default=True,
    help="Length of the synthetic market session.",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Seed of the synthetic market."
)
def demo(out: Path, seconds: float, seed: int) -> None:
    """Run the embedded default: a synthetic market and a strategy, no keys, no network.

    Generates a seeded synthetic BTCUSDT market (its statistics measured on a real Binance
    session), runs the simple quoter on it through the simulated exchange, verifies the
    result replays bit for bit and prints what happened and where the journals are.
    """
    from .demo import run_demo

    run_demo(out, seconds=seconds, seed=seed)


# ---------------------------------------------------------------------------------------------
# import


@main.group("import", cls=_Group, context_settings=CONTEXT)
def import_group() -> None:
    """Turn recorded market data into a journal (one event per message or row)."""


_out_option = click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="The journal directory to create.",
)
_force_option = click.option("--force", is_flag=True, help="Replace an existing journal at --out.")
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
@_out_option
@_xinfo_option
@click.option(
    "--infer-filters",
    is_flag=True,
    help="Guess tick and step sizes from the recording itself (for old recordings "
    "whose exchangeInfo is not at hand).",
)
@_strict_option
@_force_option
def import_binance_ws(
    files: tuple[Path, ...],
    out: Path,
    exchange_info: tuple[Path, ...],
    infer_filters: bool,
    strict: bool,
    force: bool,
) -> None:
    """Recorded Binance USDⓈ-M WebSocket files -> a market-data journal.

    Reads hftbacktest-collector files (`<recv ts> <json>` lines, gzip or plain, with the
    REST depth snapshot line) and cryptofeed captures (`<secs>: <json>`, and their REST
    snapshot logs). Several files are merged by receive time.
    """
    from .import_ws import import_binance_ws as run

    with _import_progress(files) as tick:
        report = run(
            list(files),
            out,
            exchange_info=list(exchange_info),
            infer_filters=infer_filters,
            strict=strict,
            overwrite=force,
            progress=tick,
        )
    _print_import(report)


@import_group.command("binance-klines", context_settings=CONTEXT)
@_files_arg
@click.option("--symbol", required=True, help="e.g. BTCUSDT")
@click.option("--interval", required=True, help="Binance interval: 1m, 5m, 1h, ...")
@_out_option
@_xinfo_option
@_strict_option
@_force_option
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
@_out_option
@_xinfo_option
@_strict_option
@_force_option
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
@_out_option
@_xinfo_option
@_strict_option
@_force_option
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


# ---------------------------------------------------------------------------------------------
# backtest


@main.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "-d",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Journal with the market data (from `replaymm import`, or a live/paper journal).",
)
@_out_option
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set strategy.offset_ticks=3 (repeatable).",
)
@_force_option
def backtest(config: Path, data: Path, out: Path, overrides: tuple[str, ...], force: bool) -> None:
    """Run CONFIG's strategy over recorded market data with the simulated exchange.

    Everything (market events, the exchange's answers, the strategy's intents) is written
    to the --out journal; `replaymm replay OUT --verify` re-runs it bit for bit.
    """
    from journal import read_header
    from replay import run_backtest

    from ._config import load_config, parse_config, set_config_value
    from ._console import progress_count

    cfg = load_config(config)
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq:
            _fail(f"--set {item!r}: expected KEY=VALUE, e.g. strategy.offset_ticks=3")
        cfg = set_config_value(cfg, key.strip(), value)
    cfg = parse_config(cfg, str(config))
    total = _event_estimate(read_header(data), data)
    with progress_count("backtest", total) as tick:
        result = run_backtest(cfg, data, out, overwrite=force, progress=tick)
    console.print(
        f"[bold green]backtest[/] {result.events_in:,} market events -> {result.events_out:,} events, "
        f"{result.intents:,} intents in [bold]{out}[/] ({result.seconds:.2f} s, "
        f"{fmt_rate(result.events_per_s)} events/s)"
    )
    _print_summary(result.summary)
    console.print(f"  verify it: [bold]replaymm replay {out} --verify[/]")


def _event_estimate(header: Any, path: Path) -> int | None:
    # ~40 bytes per event on average; only for the progress bar
    try:
        return max(1, sum(p.stat().st_size for p in path.glob("segment-*.rmj")) // 40)
    except OSError:
        return None


def _print_summary(summary: Any) -> None:
    from rich.table import Table

    t = Table(title="summary", title_justify="left", show_edge=False)
    for col in (
        "symbol",
        "position",
        "realized",
        "unrealized",
        "fees",
        "funding",
        "net PnL",
        "fills",
        "volume",
    ):
        t.add_column(col, justify="right")
    for i in summary.instruments:
        t.add_row(
            i.symbol,
            f"{i.position}",
            fmt_money(i.realized_pnl),
            fmt_money(i.unrealized_pnl),
            fmt_money(i.fees),
            fmt_money(i.funding),
            f"[bold]{fmt_money(i.net_pnl)}[/] {i.quote_asset}",
            f"{i.fills:,}",
            f"{i.buy_volume + i.sell_volume}",
        )
    console.print(t)
    console.print(
        f"  orders placed {summary.orders_placed:,}, cancels {summary.cancels_sent:,}, fills {summary.fills:,}, "
        f"alerts {summary.alerts:,}, book gaps {summary.book_gaps}"
        + (
            f", book vs bookTicker agreement {summary.bbo_agree}/{summary.bbo_checks}"
            if summary.bbo_checks
            else ""
        )
    )


# ---------------------------------------------------------------------------------------------
# replay


@main.command(context_settings=CONTEXT)
@click.argument(
    "journal_path", metavar="JOURNAL", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--verify",
    is_flag=True,
    help="Re-run the reducer and compare its intents with the journal's, byte for byte.",
)
@click.option(
    "--until", type=click.IntRange(min=1), help="Replay up to and including this sequence number."
)
@click.option(
    "--show", is_flag=True, help="Print book top, open orders, position and strategy state."
)
@click.option("--json", "as_json", is_flag=True, help="With --show: print JSON.")
@click.option(
    "--depth",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="Book levels shown per side.",
)
def replay(
    journal_path: Path, verify: bool, until: int | None, show: bool, as_json: bool, depth: int
) -> None:
    """Replay a journal: verify it bit for bit, or show the engine's state at any point."""
    from replay import describe_engine, replay_until
    from replay import verify as run_verify

    if not verify and not show:
        _fail("say what to do: --verify, or --show (optionally with --until SEQ)")
    if verify:
        if until is not None:
            _fail("--verify checks the whole journal; use --until with --show")
        from ._console import progress_count

        with progress_count("verifying", None) as tick:
            result = run_verify(journal_path, progress=tick)
        if result.torn:
            err_console.print(f"[yellow]note:[/] {result.torn}")
        if not result.code_digest_matches:
            err_console.print(
                "[yellow]note:[/] the journal was written by different engine code (digest differs)"
            )
        if result.divergence is not None:
            console.print(
                f"[bold red]DIVERGED[/] after {result.events:,} events: {result.divergence.describe()}"
            )
            sys.exit(1)
        console.print(
            f"[bold green]identical:[/] {result.events:,} events, {result.intents:,} intents "
            f"({result.seconds:.2f} s, {fmt_rate(result.events_per_s)} events/s)"
        )
    if show:
        engine, _header = replay_until(journal_path, until)
        state = describe_engine(engine, depth)
        if until is not None and engine.state.seq < until:
            err_console.print(f"[yellow]note:[/] the journal ends at seq {engine.state.seq}")
        if as_json:
            import msgspec

            console.print_json(msgspec.json.encode(state).decode())
        else:
            _print_state(state)


def _print_state(state: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(
        f"[bold]state at seq {state['seq']:,}[/] (session {state['session']}, engine time {state['now_ns']} ns)"
    )
    for ins in state["instruments"]:
        book, top, pos = ins["book"], ins["top"], ins["position"]
        console.print(
            f"\n[bold]{ins['symbol']}[/]  book {book['sync']} (update id {book['last_update_id']}, gaps {book['gaps']})"
        )
        console.print(
            f"  top: bid {top['bid']} x {top['bid_qty']}   ask {top['ask']} x {top['ask_qty']}"
        )
        t = Table(show_edge=False, box=None)
        t.add_column("bid qty", justify="right")
        t.add_column("bid", justify="right")
        t.add_column("ask", justify="right")
        t.add_column("ask qty", justify="right")
        for i in range(max(len(book["bids"]), len(book["asks"]))):
            b = book["bids"][i] if i < len(book["bids"]) else ("", "")
            a = book["asks"][i] if i < len(book["asks"]) else ("", "")
            t.add_row(b[1], b[0], a[0], a[1])
        console.print(t)
        if pos:
            console.print(
                f"  position {pos['qty']}  realized {pos['realized']}  fees {pos['fees']}  funding {pos['funding']}  fills {pos['fills']}"
            )
        console.print(f"  open orders: {len(ins['open_orders'])}")
        for o in ins["open_orders"]:
            console.print(
                f"    {o['client_id']:<24} {o['side']:<4} {o['qty']} @ {o['price']}  {o['status']}"
                + (" cancel pending" if o["cancel_pending"] else "")
            )
    console.print("\n[bold]strategy[/]")
    for k, v in state["strategy"].items():
        console.print(f"  {k}: {v}")
    console.print("[bold]counters[/] " + ", ".join(f"{k} {v:,}" for k, v in state["stats"].items()))


# ---------------------------------------------------------------------------------------------
# journal


@main.group(cls=_Group, context_settings=CONTEXT)
def journal() -> None:
    """Check a journal's integrity, or recover one cut by a crash."""


@journal.command("check", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
def journal_check(path: Path) -> None:
    """Read every record: framing, CRC, decoding, sequence continuity.

    Exit status: 0 clean, 1 corrupt, 3 torn tail (repairable with `journal repair`).
    """
    from journal import check_journal, read_header

    report = check_journal(path)
    header = read_header(path)
    console.print(
        f"[bold]{path}[/]: {header.kind} journal, {report.segments} segment(s), {report.bytes:,} bytes, "
        f"{report.events:,} events (seq {report.first_seq}..{report.last_seq}), "
        f"{report.intent_records:,} intent records ({report.intents:,} intents)"
    )
    if report.corrupt:
        console.print(f"[bold red]CORRUPT:[/] {report.corrupt}")
        sys.exit(1)
    if report.torn is not None:
        console.print(f"[yellow]TORN TAIL:[/] {report.torn.describe()}")
        sys.exit(3)
    console.print("[bold green]ok[/]")


@journal.command("repair", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--cut-corruption",
    is_flag=True,
    help="Also cut mid-journal corruption: truncate at the bad record (cut bytes are kept aside).",
)
def journal_repair(path: Path, cut_corruption: bool) -> None:
    """Truncate a torn tail (the incomplete last record of a crash), keeping the cut bytes."""
    from journal import repair_journal

    report, side = repair_journal(path, cut_corruption=cut_corruption)
    if not side:
        console.print(
            f"[bold green]nothing to repair:[/] {report.events:,} events, last seq {report.last_seq}"
        )
        return
    console.print(
        f"[bold green]repaired[/] {path}: kept {report.events:,} events (last seq {report.last_seq})"
    )
    for p in side:
        console.print(f"  cut bytes saved in {p}")


# ---------------------------------------------------------------------------------------------
# bench


@main.command(context_settings=CONTEXT)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Recorded session to measure on (default: ../shared/data/.../btcusdt_20240808.gz).",
)
@click.option(
    "--events",
    "min_events",
    type=click.IntRange(10_000),
    default=1_000_000,
    show_default=True,
    help="Repeat the session until the journal holds at least this many events.",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 50),
    default=5,
    show_default=True,
    help="Repetitions per figure; the median is reported.",
)
@click.option(
    "--only",
    multiple=True,
    help="Run only these sections (import, journal, replay, step, backtest, memory).",
)
def bench(data: Path | None, min_events: int, runs: int, only: tuple[str, ...]) -> None:
    """Measure the performance figures (medians of repeated runs, with ratios)."""
    from .bench import run_bench

    run_bench(data, min_events=min_events, runs=runs, only=set(only))


if __name__ == "__main__":  # pragma: no cover
    main()
