"""The USDC-M example configs on real data: the recorded BTCUSDT market imported as BTCUSDC
(`replaymm import binance-ws --as BTCUSDT=BTCUSDC`; no USDC-M recording ships), each
backtested and replayed bit for bit."""

from __future__ import annotations

import pytest

from replay import run_backtest, verify
from tools._config import load_config, set_config_value

from .conftest import ROOT, data_file


@pytest.fixture(scope="module")
def btcusdc(tmp_path_factory: pytest.TempPathFactory):
    from tools.import_ws import import_binance_ws

    out = tmp_path_factory.mktemp("usdc") / "btcusdc"
    src = data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240808.gz")
    import_binance_ws([src], out, renames={"BTCUSDT": "BTCUSDC"})
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["passive", "phase1", "phase2", "grid"])
def test_usdc_config_on_real_data(btcusdc, tmp_path, name) -> None:
    cfg = load_config(ROOT / "configs" / f"{name}-btcusdc.yaml")
    if name == "grid":  # no candles in L2 data for the breaker; a finer interval for one day
        cfg = set_config_value(cfg, "strategy.risk_control.enabled", "false")
        cfg = set_config_value(cfg, "strategy.price_interval", "30")
    result = run_backtest(cfg, btcusdc, tmp_path / "bt")
    (inst,) = result.summary.instruments
    assert inst.symbol == "BTCUSDC" and inst.quote_asset == "USDC"
    assert result.summary.fills > 0 and result.summary.book_gaps == 0
    v = verify(tmp_path / "bt")
    assert v.identical, v.divergence.describe() if v.divergence else ""
