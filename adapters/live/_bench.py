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
  returned (``live.durability``'s default, ``interval:0.5``; ``REPLAYMM_BENCH_DURABILITY``
  sets another).
* **loop stall**: a task sleeping 1 ms measures how late it wakes; the worst lateness.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trio

__all__ = ["percentiles", "run_firehose", "run_live_bench", "run_throughput"]

#: a recorded BTCUSDT session (hftbacktest's format) the firehose replays
RECORDING = Path("/work/shared/data/binance-usdm-ws-hftbacktest/btcusdt_20240808.gz")

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


async def _stall_monitor(out: list[float], until: trio.Event) -> None:
    """Worst lateness (s) of a 1 ms sleep: how long the event loop was busy elsewhere."""
    while not until.is_set():
        t = trio.current_time()
        await trio.sleep(0.001)
        late = trio.current_time() - t - 0.001
        if late > out[0]:
            out[0] = late


class _StepTimer(trio.abc.Instrument):
    """The longest single task steps (ms) by task name: which code held the loop."""

    def __init__(self) -> None:
        self.t = self.c = 0
        self.worst: dict[str, tuple[float, float]] = {}
        self.on = False

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.t = time.perf_counter_ns()
        self.c = time.thread_time_ns()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.on:
            d = (time.perf_counter_ns() - self.t) / 1e6
            name = task.name.rsplit(".", 1)[-1]
            if d > self.worst.get(name, (0.0, 0.0))[0]:
                # wall and CPU ms: wall >> CPU is a blocking call or the OS's preemption
                self.worst[name] = (round(d, 2), round((time.thread_time_ns() - self.c) / 1e6, 2))


_BARE_STALLS = """
import sys, time, trio
async def main():
    print(0, flush=True)
    await trio.sleep(float(sys.argv[1]))
    worst = 0.0
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        t = trio.current_time()
        await trio.sleep(0.001)
        worst = max(worst, trio.current_time() - t - 0.001)
    print(worst * 1e3, flush=True)
trio.run(main)
"""


def _spawn(code: list[str], root: Path, *, nice: int = 0) -> tuple[subprocess.Popen[str], int]:
    """A helper process; its first stdout line is a number (a port). ``nice``: the helpers
    that stand in for the remote exchange run at a lower priority than the runtime."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, *code],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line:
        proc.wait()
        raise RuntimeError(f"bench helper failed: {proc.stderr.read()}")  # type: ignore[union-attr]
    return proc, int(line)


def _run(
    *,
    order_entry: str,
    seconds: float,
    speed: float,
    min_orders: int,
    symbols: list[str],
    warmup_s: float = 1.0,
    firehose_rate: float = 0.0,
    recording: str = "",
    strategy: dict[str, Any] | None = None,
    helper_nice: int = 0,
) -> dict[str, Any]:
    from adapters.binance._rest import RateBudget, RestClient
    from adapters.binance._sign import Credentials
    from adapters.live import ExchangeVenue, LiveConfig, Runtime
    from adapters.live._config import Endpoints
    from adapters.local_exchange._server import DEFAULT_API_KEY, DEFAULT_API_SECRET

    root = Path(__file__).resolve().parents[2]
    procs: list[subprocess.Popen[str]] = []
    hose: list[dict[str, Any]] = []
    try:
        ex, port = _spawn(
            ["-c", _EXCHANGE.format(speed=speed, symbols=symbols)], root, nice=helper_nice
        )
        procs.append(ex)
        ep = Endpoints(
            rest_url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}",
            ws_api_url=f"ws://127.0.0.1:{port}/ws-fapi/v1",
        )
        market = None
        if firehose_rate:
            fh, fport = _spawn(
                ["-m", "adapters.local_exchange._firehose", recording, str(firehose_rate)],
                root,
                nice=helper_nice,
            )
            procs.append(fh)
            market = Endpoints(
                rest_url=f"http://127.0.0.1:{fport}", ws_url=f"ws://127.0.0.1:{fport}"
            )

            def read_hose() -> None:
                for line in fh.stderr:  # type: ignore[union-attr]
                    if line.startswith("{"):
                        hose.append({**json.loads(line), "t": time.perf_counter()})

            threading.Thread(target=read_hose, daemon=True).start()
        live = LiveConfig(
            mainnet=ep,
            order_entry=order_entry,  # type: ignore[arg-type]
            dead_man_s=0,
            reconcile_s=0,
            kline="",
            durability=os.environ.get("REPLAYMM_BENCH_DURABILITY", LiveConfig().durability),
        )
        creds = Credentials(DEFAULT_API_KEY, DEFAULT_API_SECRET)
        big = 10**9
        rest = RestClient(
            ep.rest_url,
            creds,
            budget=RateBudget(weight_per_minute=big, orders_per_10s=big, orders_per_minute=big),
        )
        cfg = {
            "strategy": strategy
            or {
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
                venue=ExchangeVenue(ep, live, creds, rest=rest, market=market),
                live=live,
                symbols=symbols[:1],
                install_signals=False,
            )
            stall = [0.0]
            depth = [0]
            window: dict[str, float] = {}

            done = trio.Event()

            async def queue_depth() -> None:
                stats = rt._recv.statistics
                while not done.is_set():
                    await trio.sleep(0.005)
                    used = stats().current_buffer_used
                    if used > depth[0]:
                        depth[0] = used

            async def main() -> Any:
                async with trio.open_nursery() as n:

                    async def measure() -> None:
                        await trio.sleep(warmup_s)  # connections, snapshot, first quotes
                        rt.latencies.clear()
                        if hasattr(rt, "track_latency"):
                            rt.track_latency()
                        n.start_soon(_stall_monitor, stall, done)
                        steps.on = True
                        n.start_soon(queue_depth)
                        window["events0"] = rt.events
                        window["intents0"] = rt.intents
                        window["t0"] = time.perf_counter()
                        window["cpu0"] = time.process_time()
                        with trio.move_on_after(seconds):
                            while len(rt.latencies) < min_orders:  # noqa: ASYNC110 - a counter
                                await trio.sleep(0.1)
                        window["events1"] = rt.events
                        window["intents1"] = rt.intents
                        window["t1"] = time.perf_counter()
                        window["cpu1"] = time.process_time()
                        done.set()  # the window's figures: not the shutdown's
                        steps.on = False
                        rt.request_stop("bench done")

                    n.start_soon(measure)
                    report = await rt.run()
                    n.cancel_scope.cancel()
                return report

            steps = _StepTimer()
            # the same 1 ms monitor in a bare process, same priority, same window: the stalls
            # the machine causes on its own (a same-run baseline)
            bare, _ = _spawn(["-c", _BARE_STALLS, str(warmup_s), str(seconds)], root)
            procs.append(bare)
            gc_was = _gc_setup()
            try:
                report = trio.run(main, instruments=[steps])
            finally:
                _gc_restore(gc_was)
    finally:
        for p in procs[:-1] if len(procs) > (2 if firehose_rate else 1) else procs:
            p.kill()
            p.wait()
    bare_stall = 0.0
    if len(procs) > (2 if firehose_rate else 1):
        with contextlib.suppress(ValueError, OSError):
            bare_stall = float(procs[-1].stdout.readline() or 0)  # type: ignore[union-attr]
        procs[-1].kill()
        procs[-1].wait()
    span = window["t1"] - window["t0"]
    out: dict[str, Any] = {
        "order_entry": order_entry,
        "speed": speed,
        "seconds": span,
        "events": int(window["events1"] - window["events0"]),
        "events_per_s": (window["events1"] - window["events0"]) / span,
        "intents_per_s": (window["intents1"] - window["intents0"]) / span,
        # the runtime process's CPU (all its threads) per second of the window: < 1 = headroom
        "cpu_share": (window["cpu1"] - window["cpu0"]) / span,
        "tick_to_order": percentiles(report.tick_to_order_ns),
        "frame_to_consumer": percentiles(getattr(rt, "queue_lag", None) or []),
        "journal_durable": percentiles(getattr(rt, "durable_ns", [])),
        "fdatasync": percentiles(getattr(rt, "fdatasync_ns", [])),
        "max_stall_ms": stall[0] * 1e3,
        "bare_process_max_stall_ms": bare_stall,
        "loadavg_1m": os.getloadavg()[0],
        "max_queue": depth[0],
        "worst_steps_ms": dict(sorted(steps.worst.items(), key=lambda kv: -kv[1][0])[:4]),
        "orders_sent": report.venue.get("orders_sent", 0),
        "unknown": report.venue.get("unknown", 0),
    }
    if firehose_rate:
        inside = [h for h in hose if window["t0"] + 1.0 <= h["t"] <= window["t1"]]
        out["firehose"] = {
            "target_per_s": firehose_rate,
            "sent_per_s": statistics.median([h["rate"] for h in inside]) if inside else 0.0,
            "max_backlog": max((h["backlog"] for h in inside), default=0),
            "loops": hose[-1]["loops"] if hose else 0,
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
        helper_nice=10,
    )


def run_throughput(speed: float, seconds: float = 8.0) -> dict[str, Any]:
    """The market at ``speed`` x real time (REST orders on): events/s and the consumer's lag."""
    return _run(
        order_entry="rest", seconds=seconds, speed=speed, min_orders=10**12, symbols=["BTCUSDT"]
    )


def run_firehose(
    rate: float, seconds: float = 10.0, *, order_entry: str = "rest", recording: str | Path = ""
) -> dict[str, Any]:
    """The runtime fed by the firehose at ``rate`` frames/s (a recorded session: depth diffs,
    bookTicker, trades), orders to the local exchange: does it keep up?

    The quoter sits 2 ticks off the touch and re-quotes on a 10-tick move, so orders flow at a
    pace an exchange would accept while every market event is parsed, sequenced, journaled
    and stepped."""
    rec = str(recording or os.environ.get("REPLAYMM_BENCH_RECORDING", "") or RECORDING)
    return _run(
        order_entry=order_entry,
        seconds=seconds,
        speed=1.0,
        min_orders=10**12,
        symbols=["BTCUSDT"],
        warmup_s=3.0,
        firehose_rate=rate,
        recording=rec,
        helper_nice=10,
        strategy={
            "kind": "simple_quoter",
            "symbol": "BTCUSDT",
            "order_qty": "0.002",
            "offset_ticks": 2,
            "requote_ticks": 10,
            "max_position": "0.010",
        },
    )


if __name__ == "__main__":  # pragma: no cover
    what = sys.argv[1] if len(sys.argv) > 1 else "latency"
    if what == "latency":
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
        for mode in ("rest", "ws_api"):
            print(json.dumps(run_live_bench(mode, min_ticks=n)), flush=True)
    elif what == "firehose":
        for rate in [float(x) for x in sys.argv[2:]] or [20_000.0]:
            print(json.dumps(run_firehose(rate)), flush=True)
    else:
        for sp in [float(x) for x in sys.argv[2:]] or [10.0, 30.0, 100.0]:
            print(json.dumps(run_throughput(sp)), flush=True)
