"""Backtests are deterministic and replay --verify reproduces them byte for byte."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from engine import IntentRecord, JournalHeader, PlaceOrder, Side, TimeInForce
from journal import Durability, JournalReader, JournalWriter
from replay import ReplayError, run_backtest, verify
from tests.conftest import SESSIONS, simple_config


def _same_files(a: Path, b: Path) -> bool:
    fa, fb = sorted(a.iterdir()), sorted(b.iterdir())
    return [p.name for p in fa] == [p.name for p in fb] and all(
        filecmp.cmp(x, y, shallow=False) for x, y in zip(fa, fb)
    )


@pytest.mark.realdata
@pytest.mark.parametrize("session", list(SESSIONS))
def test_backtest_each_real_session_and_verify(imported_sessions, tmp_path, session):
    symbol = "ETHUSDT" if session.startswith("eth") else "BTCUSDT"
    result = run_backtest(simple_config(symbol), imported_sessions[session], tmp_path / "bt")
    s = result.summary
    assert result.intents > 100 and s.fills > 10, "the strategy should actually trade"
    assert s.book_gaps == 0
    v = verify(tmp_path / "bt")
    assert v.identical, v.divergence.describe() if v.divergence else ""
    assert v.events == result.events_out and v.intents == result.intents
    print(
        f"{session}: {result.events_out} events, {result.intents} intents, {s.fills} fills, "
        f"net {s.net_pnl:.4f}; verify {v.events_per_s:,.0f} events/s"
    )


@pytest.mark.realdata
def test_same_backtest_twice_is_byte_identical(imported_sessions, tmp_path):
    cfg = simple_config()
    run_backtest(cfg, imported_sessions["btc-2024-08"], tmp_path / "a")
    run_backtest(cfg, imported_sessions["btc-2024-08"], tmp_path / "b")
    assert _same_files(tmp_path / "a", tmp_path / "b")
    cfg["strategy"]["offset_ticks"] = 3
    run_backtest(cfg, imported_sessions["btc-2024-08"], tmp_path / "c")
    assert not _same_files(tmp_path / "a", tmp_path / "c")


@pytest.mark.realdata
def test_verify_names_the_first_divergence(imported_sessions, tmp_path):
    run_backtest(simple_config(), imported_sessions["btc-2024-08"], tmp_path / "bt")
    # rewrite the journal with one recorded intent changed, as if the code had changed
    reader = JournalReader(tmp_path / "bt")
    records = list(reader.records())
    header = records[0]
    assert isinstance(header, JournalHeader)
    intent_records = [i for i, r in enumerate(records) if isinstance(r, IntentRecord)]
    k = intent_records[len(intent_records) // 2]
    old = records[k]
    place = (
        next(i for i in old.intents if isinstance(i, PlaceOrder))
        if any(isinstance(i, PlaceOrder) for i in old.intents)
        else None
    )
    changed = (
        [PlaceOrder(0, "r1-1-0", Side.BUY, 1, 1, TimeInForce.GTX)]
        if place is None
        else [
            PlaceOrder(
                place.inst, place.client_id, place.side, place.price - 1, place.qty, place.tif
            )
        ]
    )
    with JournalWriter.create(tmp_path / "tampered", header, durability=Durability("none")) as w:
        for i, r in enumerate(records[1:], 1):
            if isinstance(r, IntentRecord):
                w.append_intents(r.seq, changed if i == k else r.intents)
            else:
                w.append_record(r)
    v = verify(tmp_path / "tampered")
    assert not v.identical
    assert v.divergence.seq == old.seq
    assert v.divergence.got == list(old.intents) and v.divergence.expected == changed
    assert f"seq {old.seq}" in v.divergence.describe()


def test_verify_refuses_market_data(tmp_path):
    from tools.demo import write_synthetic_journal

    write_synthetic_journal(tmp_path / "m", seconds=2, seed=1)
    with pytest.raises(ReplayError, match="backtest"):
        verify(tmp_path / "m")


def _cfg(**backtest):
    cfg = simple_config()
    cfg["backtest"] = backtest
    return cfg


@pytest.mark.realdata
def test_funding_on_the_real_2023_session_is_size_times_mark_times_rate(
    imported_sessions, tmp_path
):
    from decimal import Decimal

    from engine import FundingSettled, MarkPriceUpdated

    cfg = simple_config()
    cfg["strategy"].update(offset_ticks=0, max_position="0.1")
    result = run_backtest(cfg, imported_sessions["btc-2023-04"], tmp_path / "bt")
    settled = [
        r.event for r in JournalReader(tmp_path / "bt").events() if type(r.event) is FundingSettled
    ]
    assert len(settled) == 1 == result.summary.funding_events  # 2023-04-05 00:00:00 UTC, once
    f = settled[0]
    assert f.ts_ns == 1680652800 * 10**9 and f.position != 0
    marks = [
        r.event
        for r in JournalReader(tmp_path / "bt").events()
        if type(r.event) is MarkPriceUpdated
    ]
    before = [m for m in marks if m.ts_ns < f.ts_ns][-1]
    assert f.rate == before.funding_rate  # the rate announced for this funding time
    exact = -Decimal(f.position) / 1000 * Decimal(f.mark_e8) / 10**8 * Decimal(f.rate) / 10**8
    assert Decimal(f.amount) / 10**8 == exact.quantize(Decimal("1e-8"))
    assert result.summary.instruments[0].funding == Decimal(f.amount) / 10**8


@pytest.mark.realdata
def test_seeded_latency_is_reproducible_and_the_seed_matters(imported_sessions):
    data = imported_sessions["btc-2024-07"]
    lat = {"model": "lognormal", "entry_ms": 5, "response_ms": 5, "sigma": 0.8}
    a = run_backtest(_cfg(seed=1, latency=lat), data, None)
    b = run_backtest(_cfg(seed=1, latency=lat), data, None)
    c = run_backtest(_cfg(seed=2, latency=lat), data, None)
    assert a.digest == b.digest
    assert a.digest != c.digest


@pytest.mark.realdata
def test_latency_measured_from_a_journal_and_recorded_feed(imported_sessions, tmp_path):
    from replay.sim import measure_round_trips

    data = imported_sessions["btc-2024-07"]
    run_backtest(_cfg(latency={"entry_ms": 3, "response_ms": 4}), data, tmp_path / "bt")
    trips = measure_round_trips(tmp_path / "bt")
    assert len(trips) > 100
    assert set(trips) == {7_000_000}  # 3 ms out + 4 ms back, on every order
    result = run_backtest(
        _cfg(latency={"model": "measured", "journal": str(tmp_path / "bt"), "feed": "recorded"}),
        data,
        tmp_path / "bt2",
    )
    assert result.summary.fills > 0
    assert verify(tmp_path / "bt2").identical


@pytest.mark.realdata
def test_counterfactual_against_a_recorded_run(imported_sessions, tmp_path):
    from replay import actual_run, compare

    run_backtest(simple_config(), imported_sessions["btc-2024-07"], tmp_path / "run")
    other = simple_config()
    other["strategy"]["offset_ticks"] = 5
    result = run_backtest(other, tmp_path / "run", None)  # market events of the recorded run
    actual = actual_run(tmp_path / "run")
    assert actual is not None and actual.summary.fills > 0
    same = run_backtest(simple_config(), tmp_path / "run", None)
    assert same.summary.fills == actual.summary.fills  # same config: the same run
    cmp = compare(actual, result.summary, result.inventory_path)
    rows = {r[0]: r for r in cmp.rows}
    assert int(rows["fills"][3]) == result.summary.fills - actual.summary.fills


@pytest.mark.realdata
def test_sweep_rows_are_reproducible_alone(imported_sessions, tmp_path):
    from replay._sweep import expand_grid, load_row, run_sweep, write_results

    grid = expand_grid(
        simple_config(),
        {"strategy.offset_ticks": [0, 3], "backtest.queue.model": ["power", "risk_averse"]},
    )
    rows, _ = run_sweep(grid, imported_sessions["btc-2024-07"], jobs=2)
    assert [r.run for r in rows] == [0, 1, 2, 3]
    assert [r.params["strategy.offset_ticks"] for r in rows] == [0, 0, 3, 3]
    write_results(
        rows, tmp_path / "s.duckdb", sweep_id="t", data=str(imported_sessions["btc-2024-07"])
    )
    cfg, data, digest = load_row(tmp_path / "s.duckdb", 2)
    assert run_backtest(cfg, data, None).digest == digest == rows[2].digest


@pytest.mark.realdata
@pytest.mark.parametrize("jobs", [0, 2])
def test_a_recorded_file_streamed_into_the_backtest_is_the_same_run(tmp_path, jobs):
    # `backtest --data FILE.gz` parses the file on the fly instead of importing it into a
    # scratch journal first: the records (and so the run) must be the same
    from tests.conftest import data_file
    from tools.import_ws import RecordedStream, import_binance_ws

    src = data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240718.gz")
    import_binance_ws([src], tmp_path / "market", jobs=0)
    via_journal = run_backtest(simple_config(), tmp_path / "market", None)
    stream = RecordedStream([src], jobs=jobs)
    assert stream.header.instruments == JournalReader(tmp_path / "market").header.instruments
    streamed = run_backtest(simple_config(), stream, tmp_path / "bt")
    assert streamed.events_in == via_journal.events_in
    assert run_backtest(simple_config(), tmp_path / "bt", None).events_in == streamed.events_in
    assert stream.report is not None and stream.report.lines == 11414
    v = verify(tmp_path / "bt")
    assert v.identical
    # the same records went in: equal digests of everything the two runs produced
    again = run_backtest(simple_config(), RecordedStream([src], jobs=jobs), None)
    assert again.digest == via_journal.digest
