"""The risk service: each limit trips or denies exactly at its threshold; after a trip nothing
that adds exposure is sent; every denial, trip and reset is a journaled decision."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import (
    ConfigError,
    ConnectionChanged,
    ConnectionState,
    Engine,
    EngineState,
    MarkPriceUpdated,
    OperatorCommanded,
    OrderFilled,
    PlaceOrder,
    RecordDecision,
    Side,
    TimerFired,
    TopOfBookUpdated,
    load_engine_config,
)
from engine.risk import RiskConfig, RiskService
from engine.strategies import Strategy
from tests.helpers import Feeder, btc

S = 1_000_000_000
MPT = 10_000  # BTCUSDT: one tick (0.10) x one lot (0.001 BTC) = 0.0001 USDT = 10_000 minor


class Harness(Strategy):
    """A strategy that only forwards to the risk service; tests act through ``self.ctx``."""

    def __init__(self, config: RiskConfig) -> None:
        self.risk = RiskService(config)
        self.ctx = None

    def on_instrument(self, ctx, instrument):
        self.ctx = ctx
        self.risk.on_instrument(ctx, instrument)

    def on_top(self, ctx, inst):
        self.risk.on_market(ctx, inst)

    def on_mark(self, ctx, ev):
        self.risk.on_mark(ctx, ev)

    def on_fill(self, ctx, order, ev):
        self.risk.on_fill(ctx, order, ev)

    def on_timer(self, ctx, key):
        self.risk.on_timer(ctx, key)

    def on_connection(self, ctx, ev):
        self.risk.on_connection(ctx, ev)

    def on_operator(self, ctx, ev):
        self.risk.on_operator(ctx, ev)


def _setup(t0: int = 1_000 * S, **limits) -> tuple[Feeder, Harness]:
    h = Harness(RiskConfig(**limits))
    f = Feeder(Engine(EngineState(h)), t0=t0)
    f.feed(btc())
    f.feed(top(600_000))
    return f, h


def top(bid: int, ask: int | None = None, uid: list[int] = [0]) -> TopOfBookUpdated:  # noqa: B006
    uid[0] += 1
    return TopOfBookUpdated(0, 0, uid[0], bid, 1000, ask if ask is not None else bid + 1, 1000)


_trade = [0]


def fill(side: Side, price: int, qty: int, fee: int = 0) -> OrderFilled:
    _trade[0] += 1
    t = _trade[0]
    return OrderFilled(0, f"x{t}", t, t, side, price, qty, qty, qty, fee, "USDT", True, 0)


def decisions(f: Feeder, action: str | None = None) -> list[RecordDecision]:
    out = [i for _, i in f.intents if isinstance(i, RecordDecision)]
    return [d for d in out if action is None or d.action == action]


def can(f: Feeder, h: Harness, side: Side, price: int, qty: int, market: bool = False):
    v = h.risk.can_place(h.ctx, 0, side, price, qty, market=market)
    f.intents += [(f.seq, i) for i in h.ctx.take()]
    return v


def place(f: Feeder, h: Harness, side: Side, price: int, qty: int):
    o = h.risk.place(h.ctx, 0, side, price, qty)
    f.intents += [(f.seq, i) for i in h.ctx.take()]
    return o


# -- can_place: each limit at its threshold --------------------------------------------------


def test_max_order_notional_at_threshold():
    # 600_000 ticks x 10 lots x 10_000 minor = 600 USDT exactly
    f, h = _setup(max_order_notional=Decimal(600))
    assert can(f, h, Side.BUY, 600_000, 10)
    v = can(f, h, Side.BUY, 600_000, 11)
    assert not v and v.code == "max_order_notional"
    assert decisions(f, "deny")[-1].code == "max_order_notional"


def test_max_position_counts_open_orders_worst_case():
    f, h = _setup(max_position=Decimal("0.010"))
    f.feed(fill(Side.BUY, 600_000, 4))
    assert place(f, h, Side.BUY, 599_990, 4) is not None  # 4 + 4 = 8 lots worst case
    assert can(f, h, Side.BUY, 599_990, 2)  # 10: exactly the limit
    assert not can(f, h, Side.BUY, 599_990, 3)  # 11
    assert can(f, h, Side.SELL, 600_010, 4)  # reduces: always allowed
    assert can(f, h, Side.SELL, 600_010, 14)  # -10 worst case: at the limit the other way
    assert not can(f, h, Side.SELL, 600_010, 15)


def test_max_open_orders_and_price_band():
    f, h = _setup(max_open_orders=2, price_band=Decimal("0.01"))
    ref = 600_000  # mid of 600_000 / 600_001, floored
    assert can(f, h, Side.BUY, ref - 6_000, 1)  # exactly 1% away
    v = can(f, h, Side.BUY, ref - 6_001, 1)
    assert v.code == "price_band"
    place(f, h, Side.BUY, ref - 10, 1)
    place(f, h, Side.BUY, ref - 20, 1)
    assert can(f, h, Side.BUY, ref - 30, 1).code == "max_open_orders"


def test_band_uses_the_mark_when_known():
    f, h = _setup(price_band=Decimal("0.01"))
    f.feed(MarkPriceUpdated(0, 0, 5_000_000_000_000, 0, 0, 0))  # 50_000.00000000 -> 500_000 ticks
    assert h.risk.ref_price(h.ctx, 0) == 500_000
    assert can(f, h, Side.BUY, 495_000, 1)
    assert not can(f, h, Side.BUY, 494_999, 1)


def test_order_rate_budget_per_10s_and_per_minute():
    f, h = _setup(max_orders_per_10s=3, max_orders_per_minute=5)
    for _ in range(3):
        assert place(f, h, Side.BUY, 599_000, 1) is not None
    assert can(f, h, Side.BUY, 599_000, 1).code == "order_rate"
    f.feed(top(600_000), dt=10 * S + 1)  # the 10 s window has passed
    assert place(f, h, Side.BUY, 599_000, 1) is not None
    assert place(f, h, Side.BUY, 599_000, 1) is not None
    v = can(f, h, Side.BUY, 599_000, 1)
    assert v.code == "order_rate" and "last minute" in v.reason


def test_repeated_denials_are_folded_in_the_journal():
    f, h = _setup(max_order_notional=Decimal(1), deny_log_interval_ms=1000)
    for _ in range(5):
        assert not can(f, h, Side.BUY, 600_000, 10)
    assert len(decisions(f, "deny")) == 1
    f.feed(top(600_000), dt=S)
    assert not can(f, h, Side.BUY, 600_000, 10)
    denies = decisions(f, "deny")
    assert len(denies) == 2 and "+4 like it" in denies[-1].message
    assert h.risk.denials["max_order_notional"] == 6


# -- should_panic_stop -----------------------------------------------------------------------


def _equity(fills: list[tuple[Side, int, int, int]], mark: int) -> int:
    """Independent of Position's average-cost bookkeeping: cash flows plus position at mark."""
    cash = 0
    pos = 0
    for side, price, qty, fee in fills:
        s = 1 if side is Side.BUY else -1
        cash -= s * price * qty * MPT + fee
        pos += s * qty
    return cash + pos * mark * MPT


fills_st = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(599_000, 601_000),
        st.integers(1, 20),
        st.integers(0, 50_000),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(fills=fills_st, limit_cents=st.integers(1, 2_000))
def test_daily_loss_trips_exactly_at_the_limit_and_then_only_reduces(fills, limit_cents):
    f, h = _setup(
        max_daily_loss=Decimal(limit_cents) / 100, max_orders_per_10s=0, max_orders_per_minute=0
    )
    limit = limit_cents * 1_000_000
    mark = 600_000  # the mid of the top fed in _setup (floored)
    done: list[tuple[Side, int, int, int]] = []
    tripped_at = None
    for i, fl in enumerate(fills):
        f.feed(fill(*fl[:3], fee=fl[3]))
        done.append(fl)
        loss = -_equity(done, mark)
        trips = decisions(f, "trip")
        if tripped_at is None:
            if loss >= limit:
                assert [d.code for d in trips] == ["daily_loss"], (i, loss, limit)
                tripped_at = i
            else:
                assert not trips, (i, loss, limit)
        # whatever the state, try to add exposure both ways
        pos = h.ctx.state.position(0).qty
        before = len(f.intents)
        place(f, h, Side.BUY, 599_000, 1 + max(0, -pos))
        place(f, h, Side.SELL, 601_000, 1 + max(0, pos))
        placed = [it for _, it in f.intents[before:] if isinstance(it, PlaceOrder)]
        if tripped_at is not None:
            assert not placed, "after a trip no order that adds exposure may be sent"
        # cancel what was placed so open orders do not pile up
        for o in list(h.ctx.state.open_orders.values()):
            h.ctx.state.close_order(o)


def test_trip_cancels_all_and_flattens_then_resets_next_utc_day():
    day = 86_400 * S
    f, h = _setup(t0=10 * day + 3_600 * S, max_daily_loss=Decimal(10))
    place(f, h, Side.SELL, 600_500, 5)  # a resting order the trip must cancel
    f.feed(fill(Side.BUY, 600_000, 50))  # 0.05 BTC long at 60000.0
    f.feed(top(598_000))  # -2000 ticks x 50 lots x 1000 = -10 USDT at the mid (not yet looked)
    f.feed(TimerFired(1, 0), dt=S)  # the risk check
    trips = decisions(f, "trip")
    assert [d.code for d in trips] == ["daily_loss"]
    kinds = [type(i).__name__ for _, i in f.intents[-6:]]
    assert "CancelAllOrders" in kinds
    flat = [i for _, i in f.intents if isinstance(i, PlaceOrder) and i.reduce_only]
    assert flat and flat[0].side is Side.SELL and flat[0].qty == 50 and flat[0].order_type == 2
    assert h.risk.halted
    # the flatten order is a reduction: allowed; a new buy is not
    assert not can(f, h, Side.BUY, 597_000, 1)
    f.feed(top(598_000), at=11 * day + 1)
    f.feed(TimerFired(2, 0), dt=1)
    resets = decisions(f, "reset")
    assert [d.code for d in resets] == ["daily_loss"] and "new UTC day" in resets[0].message
    assert not h.risk.halted


def test_drawdown_trips_at_threshold_and_needs_the_operator():
    f, h = _setup(max_drawdown=Decimal(5))
    f.feed(fill(Side.BUY, 600_000, 10))
    f.feed(fill(Side.SELL, 610_000, 10))  # +10 USDT, flat: the peak
    assert not decisions(f, "trip")
    # round trips at the mid (600_000) move equity by their fees only
    f.feed(fill(Side.BUY, 600_000, 1, fee=499_990_000))  # 4.9999 below the peak
    assert not decisions(f, "trip")
    f.feed(fill(Side.SELL, 600_000, 1, fee=10_000))  # 0.0001 more: exactly 5
    assert [d.code for d in decisions(f, "trip")] == ["drawdown"]
    f.feed(TimerFired(1, 0), dt=S)
    assert h.risk.halted
    f.feed(OperatorCommanded("risk_reset"))
    assert [d.code for d in decisions(f, "reset")] == ["drawdown"]
    assert not h.risk.halted


def test_price_change_pauses_then_resumes_when_calm():
    f, h = _setup(max_price_change=Decimal("0.01"), price_window_s=10, pause_s=5)
    timer = 1
    for _ in range(3):
        f.feed(TimerFired(timer, 0), dt=S)
        timer += 1
    f.feed(top(606_000))  # +1.0% (606000 vs 600000)
    f.feed(TimerFired(timer, 0), dt=S)
    timer += 1
    assert [d.code for d in decisions(f, "trip")] == ["price_change"]
    for _ in range(12):  # the jump leaves the 10 s window; the pause (5 s) is over by then
        f.feed(TimerFired(timer, 0), dt=S)
        timer += 1
    assert [d.code for d in decisions(f, "reset")] == ["price_change"]


def test_price_change_just_below_the_limit_does_not_trip():
    f, h = _setup(max_price_change=Decimal("0.01"))
    f.feed(TimerFired(1, 0), dt=S)
    f.feed(top(605_999))
    f.feed(TimerFired(2, 0), dt=S)
    assert not decisions(f, "trip")


def test_stale_data_and_disconnection():
    f, h = _setup(stale_data_s=Decimal(3))
    f.feed(TimerFired(1, 0), dt=2 * S)
    assert not decisions(f, "trip")
    f.feed(TimerFired(2, 0), dt=S)  # 3 s without market data
    assert [d.code for d in decisions(f, "trip")] == ["stale_data"]
    f.feed(top(600_100))
    f.feed(TimerFired(3, 0), dt=S)
    assert [d.code for d in decisions(f, "reset")] == ["stale_data"]
    f.feed(ConnectionChanged("user", ConnectionState.DOWN, "ping timeout"))
    assert decisions(f, "trip")[-1].code == "disconnected"
    assert not can(f, h, Side.BUY, 600_000, 1)
    f.feed(ConnectionChanged("user", ConnectionState.UP))
    assert decisions(f, "reset")[-1].code == "disconnected"
    assert can(f, h, Side.BUY, 600_000, 1)


def test_risk_section_is_validated_at_load():
    base = {"kind": "passive", "symbol": "BTCUSDT"}
    load_engine_config({"strategy": {**base, "risk": {"max_daily_loss": 50}}})
    with pytest.raises(ConfigError, match="max_daily_loss"):
        load_engine_config({"strategy": {**base, "risk": {"max_daily_loss": -1}}})
    with pytest.raises(ConfigError, match="nope"):
        load_engine_config({"strategy": {**base, "risk": {"nope": 1}}})
    with pytest.raises(ConfigError, match="price_band"):
        load_engine_config({"strategy": {**base, "risk": {"price_band": 2}}})
