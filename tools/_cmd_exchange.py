"""``replaymm exchange``: the local Binance USDⓈ-M exchange on 127.0.0.1."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import click

from ._cli import CONTEXT, fail, main
from ._console import console, err_console


def _fault_orders(text: str) -> tuple[float, str, str]:
    """``0.02:unknown[:yes|no|random|some]`` -> (probability, mode, placed)."""
    parts = text.split(":")
    try:
        rate = float(parts[0])
    except ValueError:
        fail(f"--fault-orders {text!r}: expected RATE:MODE[:PLACED], e.g. 0.02:unknown")
    mode = parts[1] if len(parts) > 1 else "unknown"
    placed = parts[2] if len(parts) > 2 else "random"
    return rate, mode, placed


@main.command(context_settings=CONTEXT)
@click.option(
    "--market",
    default="synthetic",
    show_default=True,
    help="'synthetic' (seeded), a journal directory, or a recorded Binance WebSocket file.",
)
@click.option(
    "--symbol",
    "symbols",
    multiple=True,
    default=("BTCUSDT",),
    show_default=True,
    help="Symbols of the synthetic market (repeatable).",
)
@click.option("--speed", type=click.FloatRange(0.01, 1000), default=1.0, show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--journal",
    type=click.Path(path_type=Path),
    help="Journal the exchange's own side (market, requests, answers) to this directory.",
)
@click.option(
    "--balance",
    multiple=True,
    metavar="ASSET=AMOUNT",
    help="Starting wallet, e.g. --balance USDT=5000 (default 10000 USDT and 10000 USDC).",
)
@click.option("--listen-key-ttl", type=float, default=3600.0, show_default=True, help="Seconds.")
@click.option("--skew-ms", type=int, default=0, help="Fault: the server clock runs this far ahead.")
@click.option(
    "--fault-orders",
    metavar="RATE:MODE[:PLACED]",
    help="Fault: this fraction of order requests fail (modes: unknown, timeout, error500, "
    "unavailable, internal, throttled; PLACED yes|no|random, or some: a batch half executed).",
)
@click.option(
    "--fault-depth-gap", type=float, default=0.0, help="Fault: fraction of depth diffs not sent."
)
@click.option(
    "--delay-ms", type=float, default=0.0, help="Fault: hold every stream message this long."
)
def exchange(
    market: str,
    symbols: tuple[str, ...],
    speed: float,
    port: int,
    seed: int,
    journal: Path | None,
    balance: tuple[str, ...],
    listen_key_ttl: float,
    skew_ms: int,
    fault_orders: str | None,
    fault_depth_gap: float,
    delay_ms: float,
) -> None:
    """Run a Binance USDⓈ-M compatible exchange on 127.0.0.1 (REST, streams, WS API).

    Orders are matched by the same simulated exchange as backtests (queue position, Binance
    filters and error codes, fees, funding). Point a Binance client at
    http://127.0.0.1:PORT and ws://127.0.0.1:PORT; the API key and secret come from
    REPLAYMM_LOCAL_API_KEY / REPLAYMM_LOCAL_API_SECRET (defaults: public test values). Faults
    can be injected at run time with POST http://127.0.0.1:PORT/control/<action>.
    """
    from decimal import Decimal, InvalidOperation

    import msgspec
    import trio

    from adapters.local_exchange import (
        DEFAULT_API_KEY,
        DEFAULT_API_SECRET,
        ExchangeConfig,
        ExchangeServer,
        Faults,
        serve_exchange,
    )
    from replay.sim import SimConfig

    balances: dict[str, Decimal] = {}
    for item in balance:
        asset, eq, amount = item.partition("=")
        try:
            balances[asset.strip().upper()] = Decimal(amount)
        except InvalidOperation:
            fail(f"--balance {item!r}: expected ASSET=AMOUNT, e.g. USDT=5000")
        if not eq:
            fail(f"--balance {item!r}: expected ASSET=AMOUNT, e.g. USDT=5000")
    sim = SimConfig(balances=balances) if balances else SimConfig()
    faults = Faults(seed=seed, skew_ms=skew_ms, depth_gap_rate=fault_depth_gap)
    if fault_orders:
        faults.order_rate, faults.order_rate_mode, faults.order_rate_placed = _fault_orders(
            fault_orders
        )
        try:
            faults.fail_orders(faults.order_rate_mode, 0, faults.order_rate_placed)
        except ValueError as e:
            fail(f"--fault-orders: {e}")
    if delay_ms:
        faults.delay_ms.update({"market": delay_ms, "user": delay_ms})
    key = os.environ.get("REPLAYMM_LOCAL_API_KEY", DEFAULT_API_KEY)
    secret = os.environ.get("REPLAYMM_LOCAL_API_SECRET", DEFAULT_API_SECRET)
    try:
        config = ExchangeConfig(
            port=port,
            symbols=[s.upper() for s in symbols],
            market=market,
            speed=speed,
            seed=seed,
            sim=sim,
            api_key=key,
            api_secret=secret,
            listen_key_ttl_s=listen_key_ttl,
            journal=str(journal) if journal else "",
            faults=faults,
        )
    except (ValueError, msgspec.ValidationError) as e:
        fail(str(e))

    problems: list[str] = []

    async def stop_on_signal(nursery: trio.Nursery) -> None:
        # SIGTERM or SIGHUP unwinds the server (as Ctrl-C does), so its journal is closed
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
            async for _ in signals:
                stopped.append(True)
                nursery.cancel_scope.cancel()
                return

    stopped: list[bool] = []

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_signal, nursery)
            try:
                ex: ExchangeServer = await nursery.start(serve_exchange, config)
            except ValueError as e:
                problems.append(str(e))
                nursery.cancel_scope.cancel()
                return
            except OSError as e:
                problems.append(f"cannot listen on 127.0.0.1:{port}: {e.strerror} (try --port 0)")
                nursery.cancel_scope.cancel()
                return
            console.print(
                f"[bold green]local exchange[/] on [bold]http://127.0.0.1:{ex.port}[/] and "
                f"ws://127.0.0.1:{ex.port} — market: {ex.source.description}, speed {speed:g}"
            )
            console.print(
                f"  REST /fapi/v1|v2|v3/...; streams /public|/market/stream?streams=...; user "
                f"/private/ws/<listenKey>; WS API /ws-fapi/v1; API key {key!r}"
                + (" (secret: the default test value)" if secret == DEFAULT_API_SECRET else "")
            )
            console.print(
                f'  faults: curl -XPOST 127.0.0.1:{ex.port}/control/drop_ws -d \'{{"kind":"market"}}\''
                "  (status: /control/status)"
            )
            if journal:
                console.print(f"  journal: {journal}")
            last = 0
            while True:
                await trio.sleep(10)
                s = ex.status()
                rate = (s["messages"] - last) / 10
                last = s["messages"]
                err_console.print(
                    f"  {s['market_events']:,} market events, {s['messages']:,} messages "
                    f"({rate:,.0f}/s), {s['connections']} connections, {s['requests']:,} "
                    f"requests, {s['open_orders']} open orders"
                    + ("; the recording has ended" if s["market_done"] else "")
                )

    try:
        trio.run(run)
    except KeyboardInterrupt:
        console.print("local exchange stopped")
    else:
        if stopped:
            console.print(
                "local exchange stopped" + (f"; journal closed: {journal}" if journal else "")
            )
    if problems:
        fail(problems[0])
