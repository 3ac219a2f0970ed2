"""Live-runtime figures on loopback: tick-to-order latency, sustained events/s, journal, stalls.

The local exchange runs in its own process (its matching and JSON are not ours to measure);
everything below is measured in the runtime's process:

* **tick-to-order**: from the market frame's receive time (``perf_counter_ns`` as soon as our
  stream client hands the frame over, before parsing) to the moment the order request's
  last byte is handed to the socket (after the journal write), for every order request
  (place, cancel, amend) a market frame caused. The strategy is the simple quoter joining the
  touch (``offset_ticks: 0``, ``requote_ticks: 1``), so every top-of-book change decides a
  cancel/replace; the exchange's rate limits are raised so it can.
* **frame -> consumer lag**: receive time to the consumer's stamp, per market event (the
  channel backlog); the runtime "keeps up" while its p99 stays bounded.
* **journal append -> durable**: each event's append until its group commit's fdatasync
  returned (``durability: interval:2``).
* **loop stall**: a task sleeping 1 ms measures how late it wakes; the worst lateness.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

__all__ = ["percentiles", "run_live_bench", "run_throughput"]

_EXCHANGE = """
import trio
from adapters.local_exchange._server import ExchangeConfig, serve_exchange
from replay.sim._config import RateLimitConfig, SimConfig
async def main():
    limits = RateLimitConfig(orders_per_10s=10**7, orders_per_minute=10**8,
                             weight_per_minute=10**9)
    cfg = ExchangeConfig(seed=11, speed={speed}, symbols={symbols!r},
                         sim=SimConfig(rate_limits=limits), queue_size=10**6)
    async with trio.open_nursery() as n:
        ex = await n.start(serve_exchange, cfg)
        print(ex.port, flush=True)
trio.run(main)
"""


def percentiles(xs: list[int]) -> dict[str, float]:
    """p50/p99/p99.9/max of nanosecond samples, in ms."""
    if not xs:
        return {}
    s = sorted(xs)
    n = len(s)

    def at(q: float) -> float:
        return s[min(n - 1, int(n * q))] / 1e6

    return {
        "n": n,
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
        "max_ms": s[-1] / 1e6,
    }


async def _stall_monitor(out: list[float]) -> None:
    """Worst lateness (s) of a 1 ms sleep: how long the event loop was busy elsewhere."""
    while True:
        t = trio.current_time()
        await trio.sleep(0.001)
        late = trio.current_time() - t - 0.001
        if late > out[0]:
            out[0] = late


def _run(
    *,
    order_entry: str,
    seconds: float,
    speed: float,
    min_orders: int,
    symbols: list[str],
    warmup_s: float = 1.0,
) -> dict[str, Any]:
    from adapters.binance._rest import RateBudget, RestClient
    from adapters.binance._sign import Credentials
    from adapters.live import ExchangeVenue, LiveConfig, Runtime
    from adapters.live._config import Endpoints
    from adapters.local_exchange._server import DEFAULT_API_KEY, DEFAULT_API_SECRET

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    ex = subprocess.Popen(
        [sys.executable, "-c", _EXCHANGE.format(speed=speed, symbols=symbols)],
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
        live = LiveConfig(
            mainnet=ep,
            order_entry=order_entry,  # type: ignore[arg-type]
            dead_man_s=0,
            reconcile_s=0,
            kline="",
            durability=os.environ.get("REPLAYMM_BENCH_DURABILITY", "interval:2"),
        )
        creds = Credentials(DEFAULT_API_KEY, DEFAULT_API_SECRET)
        big = 10**9
        rest = RestClient(
            ep.rest_url,
            creds,
            budget=RateBudget(weight_per_minute=big, orders_per_10s=big, orders_per_minute=big),
        )
        cfg = {
            "strategy": {
                "kind": "simple_quoter",
                "symbol": symbols[0],
                "order_qty": "0.002",
                "offset_ticks": 0,
                "requote_ticks": 1,
                "max_position": "0.010",
            }
        }
        with tempfile.TemporaryDirectory() as tmp:
            rt = Runtime(
                config=cfg,
                journal=Path(tmp) / "live",
                mode="live",
                venue=ExchangeVenue(ep, live, creds, rest=rest),
                live=live,
                symbols=symbols[:1],
                install_signals=False,
            )
            stall = [0.0]
            window: dict[str, float] = {}

            async def main() -> Any:
                async with trio.open_nursery() as n:

                    async def measure() -> None:
                        await trio.sleep(warmup_s)  # connections, snapshot, first quotes
                        rt.latencies.clear()
                        if hasattr(rt, "track_latency"):
                            rt.track_latency()
                        n.start_soon(_stall_monitor, stall)
                        window["events0"] = rt.events
                        window["t0"] = time.perf_counter()
                        with trio.move_on_after(seconds):
                            while len(rt.latencies) < min_orders:  # noqa: ASYNC110 - a counter
                                await trio.sleep(0.1)
                        window["events1"] = rt.events
                        window["t1"] = time.perf_counter()
                        rt.request_stop("bench done")

                    n.start_soon(measure)
                    report = await rt.run()
                    n.cancel_scope.cancel()
                return report

            gc_was = _gc_setup()
            try:
                report = trio.run(main)
            finally:
                _gc_restore(gc_was)
    finally:
        ex.kill()
        ex.wait()
    span = window["t1"] - window["t0"]
    out: dict[str, Any] = {
        "order_entry": order_entry,
        "speed": speed,
        "seconds": span,
        "events": int(window["events1"] - window["events0"]),
        "events_per_s": (window["events1"] - window["events0"]) / span,
        "tick_to_order": percentiles(report.tick_to_order_ns),
        "frame_to_consumer": percentiles(getattr(rt, "queue_lag", None) or []),
        "journal_durable": percentiles(getattr(rt, "durable_ns", [])),
        "max_stall_ms": stall[0] * 1e3,
        "orders_sent": report.venue.get("orders_sent", 0),
        "unknown": report.venue.get("unknown", 0),
    }
    return out


def _gc_setup() -> bool:
    """As ``replaymm run`` does: collect, freeze the start-up heap (ref/perf-notes.md)."""
    import gc

    was = gc.isenabled()
    gc.collect()
    gc.freeze()
    if os.environ.get("REPLAYMM_BENCH_GC") == "off":
        gc.disable()
    return was


def _gc_restore(was: bool) -> None:
    import gc

    gc.unfreeze()
    if was:
        gc.enable()


def run_live_bench(
    order_entry: str = "rest", *, min_ticks: int = 10_000, seconds: float = 60.0, speed: float = 8.0
) -> dict[str, Any]:
    """Tick-to-order over ``min_ticks`` tick-caused order requests (or ``seconds``)."""
    return _run(
        order_entry=order_entry,
        seconds=seconds,
        speed=speed,
        min_orders=min_ticks,
        symbols=["BTCUSDT"],
    )


def run_throughput(speed: float, seconds: float = 8.0) -> dict[str, Any]:
    """The market at ``speed`` x real time (REST orders on): events/s and the consumer's lag."""
    return _run(
        order_entry="rest", seconds=seconds, speed=speed, min_orders=10**12, symbols=["BTCUSDT"]
    )


if __name__ == "__main__":  # pragma: no cover
    import json

    what = sys.argv[1] if len(sys.argv) > 1 else "latency"
    if what == "latency":
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
        for mode in ("rest", "ws_api"):
            print(json.dumps(run_live_bench(mode, min_ticks=n)), flush=True)
    else:
        for sp in [float(x) for x in sys.argv[2:]] or [10.0, 30.0, 100.0]:
            print(json.dumps(run_throughput(sp)), flush=True)
