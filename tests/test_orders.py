"""The order table, fills and positions inside the reducer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import (
    CLIENT_ID_RE,
    ORDER_TRANSITIONS,
    CancelOrder,
    Engine,
    InvalidEvent,
    InvariantViolation,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderStatusUnknown,
    PlaceOrder,
    Position,
    RaiseAlert,
    Side,
    TopOfBookUpdated,
    Trigger,
    build_state,
    load_engine_config,
)
from engine._order_state import next_status
from engine.strategies import Strategy
from tests.helpers import Feeder, btc


class Placer(Strategy):
    """Places one buy of 3 lots at 100 on the first top update; nothing else."""

    def __init__(self) -> None:
        self.order = None

    def on_top(self, ctx, inst):
        if self.order is None:
            self.order = ctx.place(inst, Side.BUY, 100, 3, tag="test")


def placed() -> tuple[Feeder, str]:
    from engine import EngineState

    f = Feeder(Engine(EngineState(Placer())))
    f.feed(btc())
    out = f.feed(TopOfBookUpdated(0, 0, 1, 100, 1, 101, 1))
    (intent,) = out
    assert isinstance(intent, PlaceOrder)
    return f, intent.client_id


def fill(
    cid: str, trade_id: int, qty: int, cum: int, side: Side = Side.BUY, price: int = 100
) -> OrderFilled:
    return OrderFilled(0, cid, 7, trade_id, side, price, qty, cum, 3, 10, "USDT", True, 0)


def test_client_ids_come_from_session_and_seq_and_are_binance_valid():
    f, cid = placed()
    assert cid == "r0-2-0"
    assert CLIENT_ID_RE.match(cid)
    assert CLIENT_ID_RE.match("r99999-999999999999999-99")


def test_fills_update_order_and_position_and_duplicates_do_not_double_count():
    f, cid = placed()
    f.feed(OrderAccepted(0, cid, 7, 0))
    f.feed(fill(cid, 1, 1, 1))
    f.feed(fill(cid, 1, 1, 1))  # the same trade told twice (TRADE_LITE + ORDER_TRADE_UPDATE)
    order = f.state.order(cid)
    assert order.filled == 1 and order.status is OrderStatus.PARTIALLY_FILLED
    f.feed(fill(cid, 2, 2, 3))
    assert order.status is OrderStatus.FILLED and cid not in f.state.open_orders
    f.feed(OrderAccepted(0, cid, 7, 0))  # a late ack does not reopen it
    assert order.status is OrderStatus.FILLED
    pos = f.state.positions[0]
    assert pos.qty == 3 and pos.fees == 20 and pos.fills == 2


def test_an_overfill_is_refused_before_anything_changes():
    f, cid = placed()
    f.feed(OrderAccepted(0, cid, 7, 0))
    out = f.feed(fill(cid, 1, 4, 4))
    assert [type(i) for i in out] == [RaiseAlert] and out[0].code == "overfill"
    assert f.state.order(cid).filled == 0 and f.state.positions[0].qty == 0


def test_illegal_transition_is_an_alert_and_changes_nothing():
    f, cid = placed()
    f.feed(OrderRejected(0, cid, -5022, "post only", 0))
    out = f.feed(OrderCanceled(0, cid, 7, 0))
    assert out[0].code == "illegal_order_transition"
    assert f.state.order(cid).status is OrderStatus.REJECTED
    assert f.state.stats["invalid_events"] == 1


def test_fill_after_cancel_still_moves_the_position():
    f, cid = placed()
    f.feed(OrderAccepted(0, cid, 7, 0))
    f.feed(OrderCanceled(0, cid, 7, 0))
    f.feed(fill(cid, 9, 1, 1))
    assert f.state.order(cid).status is OrderStatus.CANCELED
    assert f.state.positions[0].qty == 1


def test_unknown_status_is_resolved_by_a_later_fact():
    f, cid = placed()
    f.feed(OrderStatusUnknown(0, cid, 0, "timeout"))
    assert f.state.order(cid).status is OrderStatus.UNKNOWN and f.state.order(cid).is_open
    f.feed(OrderAccepted(0, cid, 7, 0))
    assert f.state.order(cid).status is OrderStatus.NEW


def test_fill_for_an_unknown_order_is_accounted_and_alerted():
    f, _ = placed()
    out = f.feed(fill("someone-else", 5, 2, 2, Side.SELL))
    assert out[0].code == "unknown_fill"
    assert f.state.positions[0].qty == -2


def test_table_has_no_way_out_of_a_terminal_state():
    for (status, trigger), new in ORDER_TRANSITIONS.items():
        if status in (
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        ):
            assert new is status, (status, trigger)
    with pytest.raises(InvalidEvent):
        next_status(OrderStatus.FILLED, Trigger.CANCELED, "x")


def test_a_sequence_going_backwards_stops_the_engine():
    f, _ = placed()
    from engine import EventRecord

    with pytest.raises(InvariantViolation):
        f.engine.step(EventRecord(1, 0, btc()))


@given(
    st.lists(
        st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 1000), st.integers(1, 50)),
        max_size=60,
    )
)
def test_position_accounting_conserves_money(fills):
    """Realized + unrealized at any price equals the cash flow of the fills at that price."""
    pos = Position(0)
    cash = 0
    for side, price, qty in fills:
        pos.apply_fill(side, price, qty)
        cash += -price * qty if side is Side.BUY else price * qty
    assert pos.qty == sum(q if s is Side.BUY else -q for s, _, q in fills)
    mark = 500
    assert pos.realized + pos.unrealized(mark) == cash + pos.qty * mark
    if pos.qty == 0:
        assert pos.cost == 0


@settings(max_examples=50)
@given(st.integers(0, 5))
def test_simple_quoter_respects_its_position_limit(offset):
    cfg = load_engine_config(
        {
            "strategy": {
                "kind": "simple_quoter",
                "symbol": "BTCUSDT",
                "order_qty": "0.002",
                "offset_ticks": offset,
                "max_position": "0.002",
            }
        }
    )
    f = Feeder(Engine(build_state(cfg)))
    f.feed(btc())
    out = f.feed(TopOfBookUpdated(0, 0, 1, 1000, 1, 1001, 1))
    buy = next(i for i in out if isinstance(i, PlaceOrder) and i.side is Side.BUY)
    assert buy.price == 1000 - offset and buy.tif.name == "GTX"
    f.feed(OrderAccepted(0, buy.client_id, 1, 0))
    out = f.feed(
        OrderFilled(0, buy.client_id, 1, 1, Side.BUY, buy.price, 2, 2, 2, 0, "USDT", True, 0)
    )
    # long the max: no new buy
    assert not any(isinstance(i, PlaceOrder) and i.side is Side.BUY for i in out)
    out = f.feed(TopOfBookUpdated(0, 0, 2, 990, 1, 991, 1))
    assert any(isinstance(i, CancelOrder) for i in out) or not out
