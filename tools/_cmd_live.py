"""``replaymm run``: trade live (or paper) under trio."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import click

from ._cli import CONTEXT, fail, main
from ._console import console, err_console


def _symbols(cfg: dict[str, Any], live_symbols: list[str]) -> list[str]:
    if live_symbols:
        return list(live_symbols)
    sym = (cfg.get("strategy") or {}).get("symbol")
    if not sym:
        fail("no symbol to trade: set live.symbols or the strategy's symbol")
    return [str(sym)]


def _check_candles(cfg: dict[str, Any], symbols: list[str]) -> None:
    """Live streams and loads candles of traded symbols only: say so before starting."""
    from engine import build_state, load_engine_config

    strategy = build_state(load_engine_config(cfg)).strategy
    for symbol, interval, _ in strategy.candles_needed():
        if symbol not in symbols:
            fail(
                f"the strategy watches {symbol} {interval} candles but this run trades "
                f"{', '.join(symbols)}: add {symbol} to live.symbols or remove it from "
                "risk_control.monitor_symbols"
            )


def build_runtime(
    cfg: dict[str, Any],
    journal: Path,
    mode: str,
    *,
    key_file: Path | None = None,
    log: Any = None,
    status: Any = None,
    install_signals: bool = True,
) -> Any:
    """The runtime for ``cfg`` in ``mode`` ("paper" | "testnet" | "live" | "demo")."""
    from adapters.binance._sign import load_credentials
    from adapters.live import ExchangeVenue, PaperVenue, Runtime, load_live_config
    from replay import load_sim_config

    live = load_live_config(cfg)
    symbols = _symbols(cfg, live.symbols)
    _check_candles(cfg, symbols)
    venue: Any
    if mode == "paper":
        venue = PaperVenue(live.endpoints("paper"), live, load_sim_config(cfg))
    else:
        creds = load_credentials(key_file or (live.key_file or None))
        venue = ExchangeVenue(live.endpoints(mode), live, creds)
    return Runtime(
        config=cfg,
        journal=journal,
        mode=mode,
        venue=venue,
        live=live,
        symbols=symbols,
        log=log,
        status=status,
        install_signals=install_signals,
    )


def status_line(rt: Any) -> str:
    """``price, position, open orders, PnL``: one line from the engine's state."""
    st = rt.engine.state if rt.engine is not None else None
    if st is None:
        return "starting"
    parts = []
    for sym, inst in rt.inst_by_symbol.items():
        ins = st.instruments.get(inst)
        top = st.tops.get(inst)
        pos = st.position(inst)
        if ins is None or top is None:
            continue
        mid = (top.bid + top.ask) / 2 if top.valid else 0
        pnl = (pos.realized + (pos.unrealized(int(mid)) if mid else 0)) * ins.minor_per_ticklot
        net = (pnl - pos.fees + pos.funding) / 1e8
        parts.append(
            f"{sym} {ins.price_text(top.bid) if top.valid else '-'}/"
            f"{ins.price_text(top.ask) if top.valid else '-'}  pos {ins.qty_text(pos.qty)}  "
            f"open {sum(1 for _ in st.orders_for(inst))}  fills {pos.fills}  PnL {net:+.4f}"
        )
    conn = " ".join(f"{k}:{'up' if v else 'DOWN'}" for k, v in sorted(rt.connections.items()))
    return f"{' | '.join(parts)}  [{conn}]  events {rt.events:,}"


@main.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--paper", "mode", flag_value="paper", help="Real market data, simulated fills.")
@click.option("--testnet", "mode", flag_value="testnet", help="Binance's testnet (live.testnet).")
@click.option(
    "--journal",
    "-j",
    type=click.Path(path_type=Path),
    help="Journal directory; an existing one is resumed (recovery). Default runs/<mode>-<symbol>.",
)
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="API key file (api_key=..., api_secret=..., mode 0600); default: environment.",
)
@click.option("--seconds", type=click.FloatRange(0.1), help="Stop after this many seconds.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set live.paper.rest_url=http://127.0.0.1:8080.",
)
@click.option(
    "--market",
    type=click.Choice(["auto", "binance", "local"]),
    default="auto",
    show_default=True,
    help="--paper market data: Binance's streams (or live.paper), the local exchange's synthetic "
    "market started on 127.0.0.1, or auto: Binance when it answers, else local.",
)
@click.option("--quiet", is_flag=True, help="No status line.")
def run(
    config: Path,
    mode: str | None,
    journal: Path | None,
    key_file: Path | None,
    seconds: float | None,
    overrides: tuple[str, ...],
    market: str,
    quiet: bool,
) -> None:
    """Trade CONFIG's strategy live under trio (mainnet unless --paper or --testnet).

    Every event is journaled before the engine sees it and every intent before it is sent,
    so the journal replays bit for bit (`replaymm replay JOURNAL --verify`). Restarting on an
    existing journal recovers: the journal is replayed, a new session opened and the
    exchange's open orders, positions and balances reconciled. SIGINT/SIGTERM stop cleanly:
    quoting stops, open orders are cancelled (live.cancel_on_exit), the journal is synced.
    """
    import trio

    from adapters.binance._sign import CredentialsError

    from ._cmd_run import _load

    cfg = _load(config, overrides)
    mode = mode or "live"
    from adapters.live import load_live_config

    symbols = _symbols(cfg, load_live_config(cfg).symbols)
    journal = journal or Path("runs") / f"{mode}-{symbols[0].lower()}"
    tty = sys.stderr.isatty() and not quiet

    def log(text: str) -> None:
        if tty:
            err_console.print(" " * 100, end="\r")
        err_console.print(f"[dim]{text}[/]", highlight=False)

    def status(rt: Any) -> None:
        if tty:
            err_console.print(status_line(rt)[:160], end="\r", highlight=False)

    async def go() -> tuple[Any, Any]:
        cfg_run = cfg
        async with _paper_market(cfg, mode, market, log) as paper_endpoints:
            if paper_endpoints is not None:
                live_raw = {**cfg.get("live", {}), "paper": paper_endpoints}
                cfg_run = {**cfg, "live": live_raw}  # journaled: where the data came from
            try:
                rt = build_runtime(
                    cfg_run, journal, mode, key_file=key_file, log=log, status=status
                )
            except CredentialsError as e:
                fail(str(e))
            err_console.print(
                f"replaymm run ({mode}): {', '.join(symbols)} -> journal {journal}"
                + (" (resuming)" if journal.exists() else "")
            )
            return rt, await rt.run(seconds=seconds)

    rt, report = trio.run(go)
    print_report(rt, report)


@asynccontextmanager
async def _paper_market(
    cfg: dict[str, Any], mode: str, market: str, log: Any
) -> AsyncIterator[dict[str, str] | None]:
    """Paper trading reads Binance's market data (or ``live.paper``'s) when it is reachable;
    otherwise (``--market auto``, and the REST endpoint does not answer) or with ``--market
    local`` it starts the local exchange in-process on 127.0.0.1 with its seeded synthetic
    market, and says so."""
    if mode != "paper" or market == "binance":
        yield None
        return
    from adapters.live import load_live_config

    url = load_live_config(cfg).endpoints("paper").rest_url
    reason = "--market local"
    if market == "auto":
        import httpx

        try:
            async with httpx.AsyncClient(timeout=3.0) as client:
                await client.get(f"{url}/fapi/v1/ping")
            yield None
            return
        except httpx.HTTPError as e:
            reason = f"{url} unreachable ({type(e).__name__})"
    from adapters.local_exchange import ExchangeConfig, open_exchange
    from replay import load_sim_config

    async with open_exchange(ExchangeConfig(sim=load_sim_config(cfg))) as ex:
        base = f"127.0.0.1:{ex.port}"
        log(f"{reason}: market data from the local exchange's synthetic market on {base}")
        yield {
            "rest_url": f"http://{base}",
            "ws_url": f"ws://{base}",
            "ws_api_url": f"ws://{base}/ws-fapi/v1",
        }


def print_report(rt: Any, report: Any) -> None:
    if sys.stderr.isatty():
        err_console.print(" " * 120, end="\r")
    console.print(
        f"stopped ({report.stop_reason}): session {report.session}"
        + (
            f", recovered {report.replayed_events:,} events in {report.recovery_s:.2f} s"
            if report.resumed
            else ""
        )
    )
    console.print(f"  {status_line(rt)}")
    console.print(
        f"  events {report.events:,}, intents {report.intents:,}, alerts {len(report.alerts)}"
    )
    lat = report.latency_summary()
    if lat:
        console.print(
            f"  tick-to-order: p50 {lat['p50_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms over {lat['n']:,} orders"
        )
    streams = (report.venue or {}).get("streams") or {}
    if any(streams.values()):
        console.print(
            f"  stream rotations (23 h, no gap): market {streams.get('rotations', 0)}, "
            f"user {streams.get('user_rotations', 0)}; new connections that failed (old one "
            f"kept): {streams.get('rotations_failed', 0) + streams.get('user_rotations_failed', 0)}"
        )
    console.print(f"  journal: {report.journal}  (replaymm replay {report.journal} --verify)")
