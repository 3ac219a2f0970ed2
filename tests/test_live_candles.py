"""A live grid whose volume breaker watches candles loads them at start.

The breaker fails closed: without ``average_window`` + 1 closed candles it holds every entry,
which live would mean waiting that many intervals (OpenSQT preloads them). The venue asks the
strategy what it needs (``candles_needed``), subscribes those candles and loads the closed
ones from ``GET /fapi/v1/klines``, journaled like streamed candles. Against the local
exchange over loopback, its kline history seeded with closed candles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from msgspec.structs import replace

pytest.importorskip("adapters.local_exchange._server")

from adapters.local_exchange import ExchangeConfig, open_exchange
from engine import EventRecord, IntentRecord, KlineUpdated, PlaceOrder
from journal import JournalReader
from replay import load_sim_config, verify
from tests.test_live_batch import grid_runtime
from tests.test_live_e2e import _run

_MIN_NS = 60 * 10**9
WATCHED = (
    "strategy.risk_control.enabled=true",
    "strategy.risk_control.interval=1m",
    "strategy.risk_control.average_window=3",
    "strategy.price_interval=25",
    "strategy.order_quantity=100",
    "strategy.buy_window_size=10",
    "strategy.sell_window_size=4",
)


def _candle(open_ns: int) -> KlineUpdated:
    # quiet candles: the breaker has nothing to trip on
    return KlineUpdated(0, open_ns + _MIN_NS, "1m", open_ns, open_ns + _MIN_NS,
                        618000, 618010, 617990, 618000, 5000, 0, 40, 2500, True)  # fmt: skip


def _journal(journal: Path) -> tuple[list[KlineUpdated], int]:
    """The candles journaled before the first order decision, and that decision's seq."""
    candles: list[KlineUpdated] = []
    for rec in JournalReader(journal).records():
        if type(rec) is EventRecord and type(rec.event) is KlineUpdated:
            candles.append(rec.event)
        elif type(rec) is IntentRecord and any(type(i) is PlaceOrder for i in rec.intents):
            return candles, rec.seq
    return candles, -1


def test_a_live_grid_loads_the_candles_its_breaker_needs(tmp_path):
    from tools._cmd_run import _load
    from tools.demo import GRID_CONFIG

    cfg = _load(GRID_CONFIG, WATCHED)
    journal = tmp_path / "live"
    seen: dict[str, Any] = {}

    async def main() -> None:
        with trio.fail_after(120):
            async with open_exchange(ExchangeConfig(seed=4, sim=load_sim_config(cfg))) as ex:
                now = ex.now()
                minute = now - now % _MIN_NS
                for k in range(6, 0, -1):  # six closed candles, the last one ending now
                    ex.core.history.on_kline(_candle(minute - k * _MIN_NS))
                # and the forming one, which stays the stream's
                ex.core.history.on_kline(replace(_candle(minute), ts_ns=now, closed=False))
                rt = grid_runtime(journal, ex.port, cfg)
                out: dict[str, Any] = {}
                async with trio.open_nursery() as n:
                    await n.start(_run, rt, out)
                    while rt.venue.stats["orders_sent"] < 1:  # noqa: ASYNC110 - a counter
                        await trio.sleep(0.05)
                    seen["blocked"] = rt.engine.state.strategy.monitor_blocked
                    rt.request_stop("test")

    trio.run(main)
    candles, first_order = _journal(journal)
    assert first_order > 0, "the grid placed its ladder"
    assert seen["blocked"] == ""
    loaded = [c for c in candles if c.closed]
    # average_window + 1 = 4: the newest closed ones, oldest first, the forming one not loaded
    assert [c.open_ns for c in loaded[:4]] == sorted(c.open_ns for c in loaded[:4])
    assert len(loaded) >= 4 and all(c.interval == "1m" for c in loaded)
    assert loaded[3].close_ns <= loaded[3].ts_ns
    assert verify(journal).identical


def test_a_watched_symbol_that_is_not_traded_is_a_clear_error(tmp_path):
    from tools._cmd_run import _load
    from tools.demo import GRID_CONFIG

    cfg = _load(GRID_CONFIG, (*WATCHED, "strategy.risk_control.monitor_symbols=[ETHUSDT]"))

    async def main() -> None:
        with trio.fail_after(60):
            async with open_exchange(ExchangeConfig(seed=4, sim=load_sim_config(cfg))) as ex:
                rt = grid_runtime(tmp_path / "live", ex.port, cfg)
                await rt.run()

    with pytest.raises(BaseException) as e:
        trio.run(main)
    assert "watches ETHUSDT 1m candles but this run does not trade ETHUSDT" in repr(e.value)
