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
