"""``replaymm bench``: the performance figures, measured on real recorded data.

Each figure is the median of ``runs`` repetitions, printed next to a baseline measured in the
same process (the machines are shared and noisy: ratios are more trustworthy than absolute
rates). The real session (~94k lines) is repeated until the journal holds ``min_events``;
each copy's update ids, trade ids and times are shifted, so at every copy boundary the book
sees a gap and resyncs from that copy's own snapshot, as after a reconnect.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import msgspec

from engine import (
    FORMAT_VERSION,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    EventRecord,
    JournalHeader,
    TopOfBookUpdated,
    TradePrinted,
    registry_hash,
)
from journal import Durability, JournalReader, JournalWriter, code_digest, code_version, read_header
from replay import engine_for, run_backtest, verify
from replay._verify import gc_paused

from ._console import console, fmt_rate
from ._files import iter_lines
from .import_ws import import_binance_ws

__all__ = ["run_bench"]

DATA_ROOT = Path(
    os.environ.get("REPLAYMM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
DEFAULT_DATA = DATA_ROOT / "binance-usdm-ws-hftbacktest" / "btcusdt_20240808.gz"

BENCH_CONFIG: dict[str, Any] = {
    "strategy": {
        "kind": "simple_quoter",
        "symbol": "BTCUSDT",
        "order_qty": "0.002",
        "offset_ticks": 2,
        "requote_ticks": 1,
        "max_position": "0.010",
    },
    "backtest": {"latency": {"entry_ms": 5, "response_ms": 5}},
}


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def _timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    times = []
    out = None
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def _shift(ev: Event, k: int, id_shift: int, t_shift: int) -> Event:
    if not k:
        return ev
    t = type(ev)
    if t is TopOfBookUpdated:
        return msgspec.structs.replace(
            ev, update_id=ev.update_id + id_shift, ts_ns=ev.ts_ns + t_shift
        )
    if t is BookDeltaReceived:
        return msgspec.structs.replace(
            ev,
            first_update_id=ev.first_update_id + id_shift,
            final_update_id=ev.final_update_id + id_shift,
            prev_final_update_id=ev.prev_final_update_id + id_shift,
            ts_ns=ev.ts_ns + t_shift,
        )
    if t is BookSnapshotReceived:
        return msgspec.structs.replace(
            ev, last_update_id=ev.last_update_id + id_shift, ts_ns=ev.ts_ns + t_shift
        )
    if t is TradePrinted:
        return msgspec.structs.replace(
            ev, trade_id=ev.trade_id + id_shift, ts_ns=ev.ts_ns + t_shift
        )
    return ev


def build_repeated(session: Path, out: Path, min_events: int) -> int:
    """Write a market-data journal holding ``session`` repeated to >= ``min_events`` events."""
    header = read_header(session)
    records = list(JournalReader(session).events())
    instruments = [r for r in records if type(r.event).__name__ == "InstrumentLoaded"]
    market = [r for r in records if type(r.event).__name__ != "InstrumentLoaded"]
    span = market[-1].recv_ns - market[0].recv_ns + 1_000_000_000
    id_shift = 10**12
    copies = -(-min_events // len(market))
    new_header = JournalHeader(
        format_version=FORMAT_VERSION,
        registry_hash=registry_hash(),
        code_version=code_version(),
        code_digest=code_digest(),
        kind="market-data",
        config={},
        instruments=header.instruments,
        source={"tool": "bench", "repeated": copies, "of": header.source},
    )
    n = 0
    with JournalWriter.create(out, new_header, durability=Durability("none"), overwrite=True) as w:
        for r in instruments:
            w.append_event(r.recv_ns, r.event)
        for k in range(copies):
            for r in market:
                w.append_event(r.recv_ns + k * span, _shift(r.event, k, k * id_shift, k * span))
                n += 1
    return n + len(instruments)


def _rss_of_verify(path: Path) -> tuple[int, int]:
    """(peak RSS, anonymous RSS at the end), in kB, of a fresh process verifying ``path``.

    Read from /proc/self/status: ``ru_maxrss`` would include the parent's peak, since Linux
    keeps it across fork+exec. The peak includes the memory-mapped segment being read
    (file-backed pages, bounded by the segment size); the anonymous figure is the heap.
    """
    code = (
        "import sys\nfrom replay import verify\nverify(sys.argv[1])\n"
        "st = dict(l.split()[:2] for l in open('/proc/self/status') if len(l.split()) > 1)\n"
        "print(st['VmHWM:'], st['RssAnon:'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    hwm, anon = out.stdout.strip().splitlines()[-1].split()
    return int(hwm), int(anon)


def run_bench(data: Path | None, *, min_events: int, runs: int, only: set[str]) -> dict[str, Any]:
    data = data or DEFAULT_DATA
    if not data.exists():
        raise FileNotFoundError(2, "recorded session not found (pass --data FILE)", str(data))

    def want(section: str) -> bool:
        return not only or section in only

    figures: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="replaymm-bench-"))
    console.print(
        f"[bold]replaymm bench[/] on {data.name}; median of {runs} runs; journal >= {min_events:,} events; "
        f"CPython {sys.version.split()[0]}, {os.cpu_count()} cores; scratch {tmp}"
    )

    # -- import --------------------------------------------------------------------------
    session = tmp / "session"
    times, report = _timed(
        lambda: import_binance_ws([data], session, overwrite=True), runs if want("import") else 1
    )
    lines = report.lines
    if want("import"):
        base, _ = _timed(lambda: sum(1 for _ in iter_lines(data)), runs)
        serial, _ = _timed(
            lambda: import_binance_ws([data], tmp / "serial", overwrite=True, jobs=0), runs
        )
        rate = lines / _median(times)
        figures["import_lines_per_s"] = rate
        figures["import_one_process_lines_per_s"] = lines / _median(serial)
        console.print(f"\n[bold]import[/] ({lines:,} lines, gzip JSON -> journal)")
        console.print(
            f"  import: {fmt_rate(rate)} lines/s  (median {_median(times):.3f} s; target >= 200 k)"
        )
        console.print(
            f"  one process (--jobs 1): {fmt_rate(lines / _median(serial))} lines/s "
            f"-> parse workers give {_median(serial) / _median(times):.2f}x"
        )
        console.print(
            f"  baseline, gunzip + split lines only: {fmt_rate(lines / _median(base))} lines/s "
            f"-> import costs {_median(times) / _median(base):.1f}x the bare read"
        )

    # -- the repeated session ------------------------------------------------------------
    big = tmp / "market"
    t = time.perf_counter()
    n_events = build_repeated(session, big, min_events)
    console.print(
        f"\nrepeated session: {n_events:,} market events ({time.perf_counter() - t:.1f} s to build)"
    )
    events = [(r.recv_ns, r.event) for r in JournalReader(session).events()]

    # -- journal write -------------------------------------------------------------------
    if want("journal"):
        console.print(
            "\n[bold]journal write[/] (encode + frame + CRC + write; the session's events, repeated)"
        )
        reps = -(-min_events // len(events))
        for policy, limit in (
            ("none", None),
            ("interval:2", None),
            ("interval:5", None),
            ("every", 20_000),
        ):
            d = Durability.parse(policy)
            count = limit or reps * len(events)
            rates, p50s, p99s = [], [], []
            # throughput runs, then one more with append->durable latency tracking (which
            # costs a clock read per append, so it is kept out of the throughput figure)
            n_runs = runs if limit is None else 1
            for i in range(n_runs + (d.mode != "none")):
                track = i == n_runs
                path = tmp / f"w-{i}"
                w = JournalWriter.create(
                    path,
                    JournalHeader(FORMAT_VERSION, "", "", "", "bench", {}, []),
                    durability=d,
                    overwrite=True,
                    track_latency=track,
                )
                gc.collect()
                append = w.append_event
                feed = islice(cycle(events), count)  # the loop costs as little as it can
                t0 = time.perf_counter()
                with gc_paused():
                    for recv, ev in feed:
                        append(recv, ev)
                    w.commit()
                if not track:
                    rates.append(count / (time.perf_counter() - t0))
                w.close()
                lat = sorted(w.stats.latencies_ns)
                if lat:
                    p50s.append(lat[len(lat) // 2] / 1e6)
                    p99s.append(lat[int(len(lat) * 0.99)] / 1e6)
            rate = _median(rates)
            figures[f"journal_{policy}_events_per_s"] = rate
            extra = ""
            if p99s:
                figures[f"journal_{policy}_p99_ms"] = _median(p99s)
                extra = f", append->durable p50 {_median(p50s):.2f} ms p99 {_median(p99s):.2f} ms"
            console.print(
                f"  durability {policy:<11} {fmt_rate(rate):>8} events/s over {count:,} events{extra}"
            )
        console.print("  (targets: >= 1 M events/s with group commit, p99 append->durable <= 5 ms)")

    # -- backtest ------------------------------------------------------------------------
    bt = tmp / "backtest"
    times, result = _timed(
        lambda: run_backtest(BENCH_CONFIG, big, bt, overwrite=True), runs if want("backtest") else 1
    )
    if want("backtest"):
        rate = result.events_in / _median(times)
        figures["backtest_events_per_s"] = rate
        plain_j, _ = _timed(
            lambda: run_backtest(BENCH_CONFIG, big, bt, overwrite=True, columns=False), runs
        )
        figures["backtest_journal_only_events_per_s"] = result.events_in / _median(plain_j)
        nj, _ = _timed(lambda: run_backtest(BENCH_CONFIG, big, None), runs)
        replay_times, _ = _timed(lambda: _plain_replay(big), runs)
        figures["backtest_no_journal_events_per_s"] = result.events_in / _median(nj)
        figures["plain_replay_events_per_s"] = result.events_in / _median(replay_times)
        console.print(
            f"\n[bold]backtest[/] simple quoter; queue (power), 5 ms latency each way, fees, funding, "
            f"rate limits on ({result.events_out:,} events out, {result.intents:,} intents, "
            f"{result.summary.fills:,} fills)"
        )
        console.print(
            f"  with its journal:    {fmt_rate(figures['backtest_journal_only_events_per_s'])} "
            "market events/s (target >= 350 k, goal 500 k)"
        )
        console.print(
            f"  with its journal and the export's columns file (the default; built by a second "
            f"process): {fmt_rate(rate)} events/s"
        )
        console.print(
            f"  without a journal:   {fmt_rate(figures['backtest_no_journal_events_per_s'])} events/s"
        )
        console.print(
            f"  baseline, plain replay of the same events through the reducer, no exchange: "
            f"{fmt_rate(figures['plain_replay_events_per_s'])} events/s -> the simulated exchange and the "
            f"journal cost {_median(times) / _median(replay_times):.2f}x that"
        )
        e2e = _end_to_end(data, tmp, runs)
        figures["end_to_end_s"] = e2e
        console.print(
            f"  end to end, a fresh `replaymm backtest CONFIG --data {data.name}` (import on the fly, "
            f"backtest, summary): {e2e:.2f} s (target <= 1 s)"
        )
        one, two = _sweep_speedup(session, runs=1)
        figures["sweep_speedup"] = one / two
        console.print(
            f"  sweep of 16 configs on the session: {one:.1f} s in 1 process, {two:.1f} s in "
            f"{os.cpu_count()} -> {one / two:.2f}x (target >= 1.7x on 2 cores)"
        )

    # -- replay --verify -----------------------------------------------------------------
    if want("replay"):
        # paused and GC-on runs alternate, so neither gets the warmer machine
        times, gc_on = [], []
        for _ in range(runs):
            t, v = _timed(lambda: verify(bt), 1)
            times += t
            gc_on += _timed(lambda: _verify_gc_on(bt), 1)[0]
        assert v.identical
        rate = v.events / _median(times)
        figures["verify_events_per_s"] = rate

        def read_decode() -> int:
            dec = msgspec.msgpack.Decoder(EventRecord).decode
            n = 0
            for _p, _o, payload in JournalReader(bt).frames():
                if payload[1] == 1:
                    dec(payload)
                    n += 1
            return n

        base, _ = _timed(read_decode, runs)
        console.print(f"\n[bold]replay --verify[/] ({v.events:,} events, {v.intents:,} intents)")
        console.print(
            f"  verify, GC paused: {fmt_rate(rate)} events/s (target >= 400 k, goal 750 k)"
        )
        console.print(
            f"  verify, GC on:     {fmt_rate(v.events / _median(gc_on))} events/s "
            f"-> GC control gains {_median(gc_on) / _median(times):.2f}x"
        )
        console.print(
            f"  baseline, read + CRC + decode only: {fmt_rate(v.events / _median(base))} events/s "
            f"-> the reducer and the comparison take {1 - _median(base) / _median(times):.0%} of verify"
        )

    # -- reducer step latency ------------------------------------------------------------
    if want("step"):
        engine = engine_for(read_header(bt))
        step = engine.step
        durations: list[int] = []
        add = durations.append
        clock = time.perf_counter_ns
        dec = msgspec.msgpack.Decoder(EventRecord).decode
        with gc_paused():
            for _p, _o, payload in JournalReader(bt).frames():
                if payload[1] != 1:
                    continue
                rec = dec(payload)
                t0 = clock()
                step(rec)
                add(clock() - t0)
        empty = []
        for _ in range(100_000):
            t0 = clock()
            empty.append(clock() - t0)
        durations.sort()
        n = len(durations)
        overhead = statistics.median(empty)
        p50 = (durations[n // 2] - overhead) / 1e3
        p99 = (durations[int(n * 0.99)] - overhead) / 1e3
        p999 = (durations[int(n * 0.999)] - overhead) / 1e3
        mx = durations[-1] / 1e3
        figures.update(step_p50_us=p50, step_p99_us=p99, step_max_us=mx)
        console.print(
            f"\n[bold]reducer step[/] over {n:,} events (timer overhead {overhead:.0f} ns subtracted)"
        )
        console.print(
            f"  p50 {p50:.2f} us, p99 {p99:.2f} us, p99.9 {p999:.2f} us, max {mx:.0f} us "
            "(targets: p99 <= 15 us, max <= 1 ms)"
        )

    # -- analytics -----------------------------------------------------------------------
    if want("analytics"):
        figures.update(_analytics(bt, big, tmp, runs))

    # -- grid ----------------------------------------------------------------------------
    if want("grid"):
        figures.update(_grid(big, tmp, runs))

    # -- live ----------------------------------------------------------------------------
    if want("live"):
        figures.update(_live(runs))

    # -- memory --------------------------------------------------------------------------
    if want("memory"):
        small = tmp / "small-bt"
        small_market = tmp / "small-market"
        build_repeated(session, small_market, max(10_000, min_events // 4))
        run_backtest(BENCH_CONFIG, small_market, small, overwrite=True)
        sizes = [sum(p.stat().st_size for p in j.glob("segment-*")) for j in (small, bt)]
        mems = [_rss_of_verify(j) for j in (small, bt)]
        figures.update(
            rss_peak_mb=[hwm / 1024 for hwm, _ in mems], heap_mb=[anon / 1024 for _, anon in mems]
        )
        console.print(
            "\n[bold]memory[/] of a fresh `verify` process (streaming: the heap must not grow "
            "with the journal)"
        )
        for size, (hwm, anon) in zip(sizes, mems):
            console.print(
                f"  journal {size / 1e6:4.0f} MB: heap (RssAnon) {anon / 1024:3.0f} MB, "
                f"peak RSS {hwm / 1024:3.0f} MB (includes the mapped segment, <= 64 MB)"
            )
    _cleanup(tmp)
    return figures


def _live(runs: int) -> dict[str, float]:
    """The live runtime against the local exchange (own process) over loopback: tick-to-order
    per entry mode, the consumer's lag and the journal's group commit, the worst loop stall."""
    from adapters.live._bench import run_live_bench

    n = max(1, min(runs, 3))  # ~30-60 s per run
    out: dict[str, float] = {}
    console.print(
        f"\n[bold]live[/] (local exchange in its own process, simple quoter joining the touch: "
        f"every top-of-book change decides a cancel/replace; median of {n} runs; "
        f"{os.cpu_count()} cores shared with the exchange and anything else running: "
        "the tails measure the machine as much as the code)"
    )
    for mode in ("rest", "ws_api"):
        rs = [run_live_bench(mode, min_ticks=10_000, seconds=60.0) for _ in range(n)]
        t2o = {k: _median([r["tick_to_order"][k] for r in rs]) for k in rs[0]["tick_to_order"]}
        for k, v in t2o.items():
            out[f"live_{mode}_tick_to_order_{k}"] = v
        eps = _median([r["events_per_s"] for r in rs])
        lag99 = _median([r["frame_to_consumer"]["p99_ms"] for r in rs])
        dur99 = _median([r["journal_durable"].get("p99_ms", 0.0) for r in rs])
        stall = _median([r["max_stall_ms"] for r in rs])
        out.update(
            {
                f"live_{mode}_events_per_s": eps,
                f"live_{mode}_frame_to_consumer_p99_ms": lag99,
                f"live_{mode}_journal_durable_p99_ms": dur99,
                f"live_{mode}_max_stall_ms": stall,
            }
        )
        target = "p50 <= 0.6, p99 <= 2" if mode == "rest" else "p99 <= 1"
        console.print(
            f"  {mode:<6} tick-to-order over {t2o['n']:,.0f} ticks: p50 {t2o['p50_ms']:.2f} ms, "
            f"p99 {t2o['p99_ms']:.2f}, p99.9 {t2o['p999_ms']:.2f}, max {t2o['max_ms']:.2f} "
            f"(target {target} ms)"
        )
        console.print(
            f"         {fmt_rate(eps)} events/s (the exchange's pace), frame->consumer p99 "
            f"{lag99:.2f} ms, journal append->durable p99 {dur99:.1f} ms (target <= 2), "
            f"worst loop stall {stall:.1f} ms (target <= 5)"
        )
    out.update(_live_throughput(n))
    return out


def _live_throughput(n: int) -> dict[str, float]:
    """The runtime fed by the firehose (a recorded session over a loopback WebSocket) at
    rising rates: does it keep up, and what do the journal and the loop look like."""
    from adapters.live._bench import RECORDING, run_firehose

    out: dict[str, float] = {}
    if not RECORDING.exists():
        console.print(f"  throughput: skipped ({RECORDING} not found)")
        return out
    console.print(
        f"  throughput: the firehose replays {RECORDING.name} (depth diffs, bookTicker, trades) "
        f"at a set rate, orders go to the local exchange; median of {n} runs of 10 s; the "
        "'bare' stall is a 1 ms-sleep monitor in an otherwise idle process, same window"
    )
    for rate in (20_000, 30_000, 40_000):
        rs = [run_firehose(rate) for _ in range(n)]

        def med(f: Any, rs: list[dict[str, Any]] = rs) -> float:
            return _median([float(f(r)) for r in rs])

        eps = med(lambda r: r["events_per_s"])
        fig = {
            "events_per_s": eps,
            "backlog": med(lambda r: r["firehose"]["max_backlog"]),
            "cpu_share": med(lambda r: r["cpu_share"]),
            "lag_p99_ms": med(lambda r: r["frame_to_consumer"]["p99_ms"]),
            "durable_p50_ms": med(lambda r: r["journal_durable"]["p50_ms"]),
            "durable_p99_ms": med(lambda r: r["journal_durable"]["p99_ms"]),
            "fdatasync_p99_ms": med(lambda r: r["fdatasync"]["p99_ms"]),
            "max_stall_ms": med(lambda r: r["max_stall_ms"]),
            "bare_stall_ms": med(lambda r: r["bare_process_max_stall_ms"]),
            "loadavg": med(lambda r: r["loadavg_1m"]),
        }
        for k, v in fig.items():
            out[f"live_firehose_{rate // 1000}k_{k}"] = v
        console.print(
            f"  {fmt_rate(rate)}/s offered: {fmt_rate(eps)} events/s taken, firehose backlog "
            f"{fig['backlog']:.0f} frames, CPU {fig['cpu_share']:.2f} of a core, frame->consumer "
            f"p99 {fig['lag_p99_ms']:.1f} ms; journal append->durable p50 "
            f"{fig['durable_p50_ms']:.1f} / p99 {fig['durable_p99_ms']:.1f} ms (fdatasync alone "
            f"p99 {fig['fdatasync_p99_ms']:.1f}); worst stall {fig['max_stall_ms']:.1f} ms "
            f"(bare process {fig['bare_stall_ms']:.1f}); load {fig['loadavg']:.1f}"
        )
    return out


def _grid(market: Path, tmp: Path, runs: int) -> dict[str, float]:
    """The grid over the same L2 market as the simple quoter (a same-run baseline), and over
    38 days of real 5m candles (the breaker, timers and reconciliation included)."""
    from tools._config import load_config, set_config_value

    root = Path(__file__).resolve().parent.parent
    cfg = load_config(root / "configs" / "grid-btcusdt.yaml")
    l2 = set_config_value(cfg, "strategy.risk_control.enabled", "false")
    l2 = set_config_value(l2, "strategy.price_interval", "30")
    times, res = _timed(lambda: run_backtest(l2, market, None), runs)
    base, _ = _timed(lambda: run_backtest(BENCH_CONFIG, market, None), runs)
    rate = res.events_in / _median(times)
    console.print(f"\n[bold]grid[/] ({res.events_in:,} L2 market events, no journal)")
    console.print(
        f"  grid backtest: {fmt_rate(rate)} events/s; simple quoter on the same data "
        f"{fmt_rate(res.events_in / _median(base))} events/s "
        f"-> grid costs {_median(times) / _median(base):.2f}x"
    )
    out: dict[str, float] = {"grid_l2_events_per_s": rate}
    klines = (
        DATA_ROOT / "binance-usdm-klines-freqtrade" / "BTCUSDT_perp_5m_2023-01-02_to_2023-02-09.csv"
    )
    if klines.exists():
        from .import_csv import import_klines

        candles = tmp / "candles"
        import_klines([klines], candles, symbol="BTCUSDT", interval="5m", overwrite=True)
        ktimes, kres = _timed(lambda: run_backtest(cfg, candles, None), runs)
        s = kres.summary
        console.print(
            f"  38 days of 5m candles: {kres.events_in:,} candles -> {kres.events_out:,} events "
            f"in {_median(ktimes):.2f} s ({fmt_rate(kres.events_out / _median(ktimes))} events/s "
            f"incl. timers and snapshots); {s.fills:,} fills, net {s.net_pnl:.2f}"
        )
        out["grid_candles_s"] = _median(ktimes)
    return out


def _analytics(bt: Path, market: Path, tmp: Path, runs: int) -> dict[str, float]:
    """Export of the backtest journal to DuckDB from its columns file (built by the backtest)
    and by decoding the journal, against a plain read of it (interleaved, same run); what
    building the columns costs the backtest; every ready-made view over the export replicated
    10x (10 journals side by side, ~10 M events)."""
    import duckdb

    from replay.analytics import TABLES, VIEWS, export_duckdb
    from replay.analytics._sidecar import read_columns
    from replay.analytics._views import create_views

    out = tmp / "bt.duckdb"
    _, why = read_columns(bt)
    paths = {"columns": True, "decode": False} if why == "used" else {"decode": False}
    results: dict[str, list[Any]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in (*paths, "plain")}
    wall: dict[str, list[float]] = {k: [] for k in (*paths, "plain")}

    def measure(key: str, fn: Callable[[], Any]) -> Any:
        gc.collect()
        t0, w0 = os.times(), time.perf_counter()
        res = fn()
        w1, t1 = time.perf_counter(), os.times()
        wall[key].append(w1 - w0)
        # the decode path's forked scanner is a reaped child: its CPU is in children_*
        cpu[key].append(sum(t1[:4]) - sum(t0[:4]))
        return res

    # interleaved, so every path sees the same machine
    for _ in range(runs):
        for key, use in paths.items():
            results[key].append(measure(key, lambda u=use: export_duckdb(bt, out, columns=u)))
        measure("plain", lambda: sum(1 for _ in JournalReader(bt).events()))
    r = results["decode"][-1]
    n = r.events
    console.print(
        f"\n[bold]analytics[/] export of the backtest journal to DuckDB ({n:,} events, "
        f"{r.rows['fills']:,} fills); median of {runs} interleaved runs; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    figures: dict[str, float] = {}
    plain = _median(wall["plain"])
    for key in paths:
        w, c = _median(wall[key]), _median(cpu[key])
        read_s = _median([x.read_s for x in results[key]])
        write_s = _median([x.write_s for x in results[key]])
        figures[f"export_{key}_events_per_s"] = n / w
        figures[f"export_{key}_vs_plain_read"] = w / plain
        figures[f"export_{key}_events_per_cpu_s"] = n / c
        figures[f"export_{key}_read_s"] = read_s
        figures[f"export_{key}_write_s"] = write_s
        what = "from its columns file" if key == "columns" else "decoding the journal"
        console.print(
            f"  {what + ':':<22} {fmt_rate(n / w):>8} events/s (median {w:.2f} s: read "
            f"{read_s:.2f} s, DuckDB write {write_s:.2f} s; {w / plain:.2f}x a plain read); "
            f"CPU {c:.2f} s ({fmt_rate(n / c)} events per CPU-second)"
        )
    if "columns" not in paths:
        console.print(f"  (no columns file to export from: {why})")
    console.print(
        f"  baseline, plain JournalReader.events(): {fmt_rate(n / plain)} events/s "
        f"(CPU {_median(cpu['plain']):.2f} s); target >= 1 M events/s"
    )
    best = "columns" if "columns" in paths else "decode"
    figures["export_events_per_s"] = figures[f"export_{best}_events_per_s"]
    figures["export_vs_plain_read"] = figures[f"export_{best}_vs_plain_read"]
    figures.update(_columns_cost(market, tmp, runs))
    con = duckdb.connect()
    con.execute(f"ATTACH '{out}' AS one (READ_ONLY)")
    for name in TABLES:
        con.execute(
            f"CREATE TABLE {name} AS SELECT * REPLACE (journal || '-' || k AS journal) "
            f"FROM one.{name}, range(10) r(k) ORDER BY k"
        )
    con.execute("DETACH one")
    create_views(con)
    events, tops = con.sql(
        "SELECT (SELECT count(*) FROM events), count(*) FROM book_top"
    ).fetchall()[0]
    console.print(
        f"  views over the export x10 ({events:,} events, {tops:,} book_top rows), median ms to an "
        "Arrow table (target <= 500):"
    )
    cells = []
    for view in VIEWS:
        q, _ = _timed(lambda v=view: con.sql(f"SELECT * FROM {v}").to_arrow_table(), runs)
        figures[f"view_{view}_s"] = _median(q)
        cells.append(f"{view} {_median(q) * 1e3:.0f}")
    con.close()
    for i in range(0, len(cells), 5):
        console.print("    " + ", ".join(cells[i : i + 5]))
    slowest = max(VIEWS, key=lambda v: figures[f"view_{v}_s"])
    console.print(f"  slowest: {slowest} {figures[f'view_{slowest}_s'] * 1e3:.0f} ms")
    figures["markout_query_s"] = figures["view_fill_markouts_s"]
    return figures


def _columns_cost(market: Path, tmp: Path, runs: int) -> dict[str, float]:
    """The backtest with and without building its export's columns (interleaved): what the
    follower process costs it (its CPU runs on another core if there is a free one)."""
    out = tmp / "bt-columns"
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for i in range(runs):
        for on in (True, False) if i % 2 else (False, True):
            gc.collect()
            t0, w0 = os.times(), time.perf_counter()
            r = run_backtest(BENCH_CONFIG, market, out, overwrite=True, columns=on)
            w1, t1 = time.perf_counter(), os.times()
            wall[on].append(w1 - w0)
            cpu[on].append(sum(t1[:4]) - sum(t0[:4]))  # the follower is a reaped child
            assert r.columns == ("written" if on else ""), r.columns
    w_on, w_off = _median(wall[True]), _median(wall[False])
    c_on, c_off = _median(cpu[True]), _median(cpu[False])
    console.print(
        f"  the backtest building the columns (a process following its journal): "
        f"{w_on:.2f} s against {w_off:.2f} s without -> {w_on / w_off - 1:+.1%} wall; the follower's "
        f"CPU {c_on - c_off:.2f} s ({c_on / c_off - 1:+.0%} of the backtest's); "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    return {
        "backtest_columns_cost": w_on / w_off - 1,
        "backtest_columns_cpu_cost": c_on / c_off - 1,
    }


def _plain_replay(path: Path) -> int:
    """The baseline: read and step the market events, nothing else."""
    engine = engine_for(JournalHeader(FORMAT_VERSION, "", "", "", "bench", BENCH_CONFIG, []))
    step = engine.step
    n = 0
    with gc_paused():
        for rec in JournalReader(path).events():
            step(rec)
            n += 1
    return n


def _end_to_end(data: Path, tmp: Path, runs: int) -> float:
    import yaml

    cfg = tmp / "bench.yaml"
    cfg.write_text(yaml.safe_dump(BENCH_CONFIG))
    cmd = [sys.executable, "-m", "tools.cli", "backtest", str(cfg), "--data", str(data)]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return _median(times)


def _sweep_speedup(session: Path, runs: int) -> tuple[float, float]:
    from replay._sweep import expand_grid, run_sweep

    grid = expand_grid(
        BENCH_CONFIG,
        {
            "strategy.offset_ticks": [0, 1, 2, 3, 4, 5, 6, 7],
            "backtest.queue.model": ["power", "risk_averse"],
        },
    )
    _, one = run_sweep(grid, session, jobs=1)
    _, two = run_sweep(grid, session, jobs=os.cpu_count())
    return one, two


def _verify_gc_on(path: Path) -> None:
    import replay._verify as v

    original = v.gc_paused
    import contextlib

    v.gc_paused = contextlib.nullcontext  # type: ignore[assignment]
    try:
        verify(path)
    finally:
        v.gc_paused = original


def _cleanup(tmp: Path) -> None:
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
