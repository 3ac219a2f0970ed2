"""Tick-to-order latency on loopback: the runtime against the local exchange in its own process.

Measured from a market frame's receive time (``perf_counter_ns`` right after
``get_message``) to the moment the order request's last byte is written (httpcore's
``send_request_body.complete`` for REST; ``send_message`` returning for the WS API), for every
order a market frame caused. Also: events the runtime journaled and stepped per second.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

__all__ = ["run_live_bench"]

_EXCHANGE = """
import trio
from adapters.local_exchange._server import ExchangeConfig, serve_exchange
async def main():
    async with trio.open_nursery() as n:
        ex = await n.start(serve_exchange, ExchangeConfig(seed=11, speed={speed}))
        print(ex.port, flush=True)
trio.run(main)
"""


def run_live_bench(
    seconds: float = 20.0, order_entry: str = "rest", speed: float = 3.0
) -> dict[str, Any]:
    from adapters.binance._sign import Credentials
    from adapters.live import ExchangeVenue, LiveConfig, Runtime
    from adapters.live._config import Endpoints
    from adapters.local_exchange._server import DEFAULT_API_KEY, DEFAULT_API_SECRET

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    ex = subprocess.Popen(
        [sys.executable, "-c", _EXCHANGE.format(speed=speed)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(ex.stdout.readline())  # type: ignore[union-attr]
        ep = Endpoints(
            rest_url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}",
            ws_api_url=f"ws://127.0.0.1:{port}/ws-fapi/v1",
        )
        live = LiveConfig(mainnet=ep, order_entry=order_entry, dead_man_s=0)  # type: ignore[arg-type]
        cfg = {
            "strategy": {
                "kind": "simple_quoter",
                "symbol": "BTCUSDT",
                "order_qty": "0.002",
                "offset_ticks": 3,
                "requote_ticks": 1,
                "max_position": "0.010",
            }
        }
        with tempfile.TemporaryDirectory() as tmp:
            rt = Runtime(
                config=cfg,
                journal=Path(tmp) / "live",
                mode="live",
                venue=ExchangeVenue(ep, live, Credentials(DEFAULT_API_KEY, DEFAULT_API_SECRET)),
                live=live,
                symbols=["BTCUSDT"],
                install_signals=False,
            )
            report = trio.run(lambda: rt.run(seconds=seconds))
    finally:
        ex.kill()
        ex.wait()
    lat = sorted(report.tick_to_order_ns)
    out: dict[str, Any] = {
        "order_entry": order_entry,
        "orders_measured": len(lat),
        "events": report.events,
        "events_per_s": report.events / seconds,
    }
    if lat:
        out["p50_ms"] = statistics.median(lat) / 1e6
        out["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6
    return out


if __name__ == "__main__":  # pragma: no cover
    for mode in ("rest", "ws_api"):
        print(run_live_bench(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0, mode))
