"""The grid on the shipped real data: 38 days of 5m BTCUSDT candles (with the volume-spike
breaker firing on the real spikes in them), the real L2 sessions, and the USDC-M example;
every run replays bit for bit."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from engine._intents import RecordDecision
from engine._records import IntentRecord
from journal import JournalReader
from replay import run_backtest, verify
from tools._config import load_config, set_config_value

from .conftest import ROOT, SESSIONS, data_file

KLINES = ("binance-usdm-klines-freqtrade", "BTCUSDT_perp_5m_2023-01-02_to_2023-02-09.csv")


def decisions(journal: Path) -> list[tuple[int, RecordDecision]]:
    out = []
    for rec in JournalReader(journal).records():
        if isinstance(rec, IntentRecord):
            out += [(rec.seq, i) for i in rec.intents if isinstance(i, RecordDecision)]
    return out


@pytest.fixture(scope="module")
def candles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tools.import_csv import import_klines

    src = data_file(*KLINES)
    base = tmp_path_factory.mktemp("candles")
    for symbol in ("BTCUSDT", "BTCUSDC"):
        import_klines([src], base / symbol, symbol=symbol, interval="5m")
    return {s: base / s for s in ("BTCUSDT", "BTCUSDC")}


@pytest.mark.realdata
@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTCUSDC"])
def test_grid_on_38_days_of_real_candles_with_the_breaker(candles, tmp_path, symbol) -> None:
    cfg = load_config(ROOT / "configs" / f"grid-{symbol.lower()}.yaml")
    result = run_backtest(cfg, candles[symbol], tmp_path / "bt")
    s = result.summary
    made = decisions(tmp_path / "bt")
    actions = Counter(d.action for _, d in made)
    # the breaker trips on real spikes, cancels entries, and recovers
    assert actions["trip"] >= 10 and actions["recover"] >= 10
    assert actions["cancel_entries"] >= 1
    assert actions["safety_check"] == 1 and actions["refuse"] == 0
    (inst,) = s.instruments
    assert s.fills > 1000 and inst.maker_fills == s.fills
    assert s.net_pnl > 0  # 38 days of a ranging market: the grid earns its intervals
    v = verify(tmp_path / "bt")
    assert v.identical, v.divergence.describe() if v.divergence else ""
    first_trip = next(seq for seq, d in made if d.action == "trip")
    print(
        f"{symbol}: {s.fills} fills, net {s.net_pnl:.2f}, fees {inst.fees:.2f}, trips "
        f"{actions['trip']} (first at seq {first_trip}), verify identical"
    )


@pytest.mark.realdata
@pytest.mark.parametrize("session", list(SESSIONS))
def test_grid_on_real_l2_sessions(imported_sessions, tmp_path, session) -> None:
    cfg = load_config(ROOT / "configs" / "grid-btcusdt.yaml")
    cfg = set_config_value(cfg, "strategy.risk_control.enabled", "false")  # no L2 candles
    if session.startswith("eth"):
        for key, value in (
            ("symbol", "ETHUSDT"),
            ("price_interval", "2"),
            ("order_quantity", "50"),
        ):
            cfg = set_config_value(cfg, f"strategy.{key}", value)
    else:
        # BTC near 28k in 2023-04 allows a finer interval that still covers fees
        interval = "12" if session == "btc-2023-04" else "30"
        cfg = set_config_value(cfg, "strategy.price_interval", interval)
    result = run_backtest(cfg, imported_sessions[session], tmp_path / "bt")
    assert result.summary.fills >= 2 and result.summary.book_gaps == 0
    v = verify(tmp_path / "bt")
    assert v.identical, v.divergence.describe() if v.divergence else ""
