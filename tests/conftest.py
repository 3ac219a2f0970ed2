"""Shared fixtures. Real data is read from ../shared/data (never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("REPLAYMM_DATA", ROOT.parent / "shared" / "data")).resolve()
WS = DATA / "binance-usdm-ws-hftbacktest"

#: the shipped real USDⓈ-M sessions: (name, files that form one continuous session)
SESSIONS = {
    "btc-2023-04": ["btcusdt_20230404.dat.gz", "btcusdt_20230405.dat.gz"],
    "btc-2024-07": ["btcusdt_20240718.gz", "btcusdt_20240719.gz"],
    "btc-2024-08": ["btcusdt_20240808.gz"],
    "eth-2024-08": ["ethusdt_20240808.gz"],
}


def data_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (set REPLAYMM_DATA to ../shared/data)")
    return path


@pytest.fixture(scope="session")
def imported_sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each shipped real session imported once per test run."""
    from tools.import_ws import import_binance_ws

    out: dict[str, Path] = {}
    base = tmp_path_factory.mktemp("sessions")
    for name, files in SESSIONS.items():
        paths = [data_file("binance-usdm-ws-hftbacktest", f) for f in files]
        import_binance_ws(paths, base / name)
        out[name] = base / name
    return out


SIMPLE_CONFIG = {
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


def simple_config(symbol: str = "BTCUSDT") -> dict:
    import copy

    cfg = copy.deepcopy(SIMPLE_CONFIG)
    cfg["strategy"]["symbol"] = symbol
    if symbol.startswith("ETH"):
        cfg["strategy"]["order_qty"] = "0.050"
        cfg["strategy"]["max_position"] = "0.250"
    return cfg
