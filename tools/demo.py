"""``replaymm demo``: the embedded default, no keys, no network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.binance import builtin_instrument
from engine import FORMAT_VERSION, JournalHeader, registry_hash
from journal import Durability, JournalWriter, code_digest, code_version
from replay import run_backtest, verify
from replay._synthetic import SyntheticMarket, SyntheticMarketConfig

from ._console import console, fmt_rate

__all__ = ["DEMO_CONFIG", "run_demo", "write_synthetic_journal"]

DEMO_CONFIG: dict[str, Any] = {
    "strategy": {
        "kind": "simple_quoter",
        "symbol": "BTCUSDT",
        "order_qty": "0.002",
        "offset_ticks": 2,
        "requote_ticks": 3,
        "max_position": "0.010",
        "post_only": True,
    },
    "backtest": {
        "latency": {"entry_ms": 5, "response_ms": 5},
        "fees": {"maker": "0.0002", "taker": "0.0005"},
    },
}


def write_synthetic_journal(
    out: Path, *, seconds: float, seed: int, symbol: str = "BTCUSDT"
) -> int:
    """A market-data journal of ``seconds`` of the seeded synthetic market; returns events."""
    spec = builtin_instrument(0, symbol)
    cfg = SyntheticMarketConfig(seed=seed)
    header = JournalHeader(
        format_version=FORMAT_VERSION,
        registry_hash=registry_hash(),
        code_version=code_version(),
        code_digest=code_digest(),
        kind="market-data",
        config={},
        instruments=[spec],
        source={"tool": "synthetic", "seed": seed, "seconds": seconds},
    )
    market = SyntheticMarket(cfg, spec)
    n = 0
    with JournalWriter.create(out, header, durability=Durability("none"), overwrite=True) as w:
        w.append_event(cfg.start_ns, spec)
        for recv, ev in market.events(seconds):
            w.append_event(recv, ev)
            n += 1
    return n + 1


def run_demo(out: Path, *, seconds: float, seed: int) -> None:
    market_path = out / "market"
    bt_path = out / "backtest"
    console.print(
        f"[bold]replaymm demo[/]: {seconds:g} s of a synthetic BTCUSDT market (seed {seed}), "
        "simple quoter, simulated exchange"
    )
    n = write_synthetic_journal(market_path, seconds=seconds, seed=seed)
    console.print(
        f"  1. market data: {n:,} events (snapshot, depth diffs, bookTicker, trades, mark price) -> {market_path}"
    )
    result = run_backtest(DEMO_CONFIG, market_path, bt_path, overwrite=True)
    s = result.summary
    ins = s.instruments[0]
    console.print(
        f"  2. backtest: {result.events_out:,} events, {result.intents:,} intents in {result.seconds:.2f} s -> {bt_path}"
    )
    console.print(
        f"     orders placed {s.orders_placed:,}, cancels {s.cancels_sent:,}, fills {s.fills:,}; "
        f"position {ins.position} BTC; net PnL {ins.net_pnl:.4f} USDT (spread capture "
        f"{ins.spread_capture:.4f}, inventory {ins.inventory_pnl:.4f}, fees {ins.fees:.4f})"
    )
    v = verify(bt_path)
    if not v.identical:
        console.print(
            f"[bold red]  3. replay diverged:[/] {v.divergence.describe() if v.divergence else ''}"
        )
        raise SystemExit(1)
    console.print(
        f"  3. replay --verify: [bold green]identical[/], {v.events:,} events, {v.intents:,} intents "
        f"({fmt_rate(v.events_per_s)} events/s)"
    )
    console.print("\nnext:")
    console.print(
        f"  replaymm replay {bt_path} --until 2000 --show     # the engine's state at seq 2000"
    )
    console.print(f"  replaymm journal check {bt_path}")
    console.print(
        f"  replaymm backtest configs/simple-btcusdt.yaml --data {market_path} --out {out}/bt2 --set strategy.offset_ticks=5"
    )
