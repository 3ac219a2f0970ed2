"""Order reconciliation every strategy gets (engine/_reconcile.py): lost orders settled, our
orphans cancelled, manual orders left alone; one disagreement waits for a second snapshot."""

from __future__ import annotations

from engine import Engine, load_engine_config
from engine._config import build_state
from engine._events import (
    AccountSnapshotReceived,
    OpenOrderRow,
    OrderAccepted,
    SessionStarted,
    Side,
    TimeInForce,
    TopOfBookUpdated,
)
from engine._intents import CancelOrder, PlaceOrder, RecordDecision
from engine._order_state import OrderStatus

from .helpers import Feeder, btc

CONFIG = {
    "strategy": {"kind": "simple_quoter", "symbol": "BTCUSDT", "order_qty": "0.002"},
}


def quoting() -> tuple[Feeder, list[str]]:
    f = Feeder(Engine(build_state(load_engine_config(CONFIG))))
    f.feed(btc())
    f.feed(SessionStarted(1, "live"))
    out = f.feed(TopOfBookUpdated(0, 0, 1, 1000, 1, 1001, 1))
    ids = [i.client_id for i in out if isinstance(i, PlaceOrder)]
    for cid in ids:
        f.feed(OrderAccepted(0, cid, 1, 0))
    return f, ids


def snapshot(f: Feeder, rows: list[OpenOrderRow]) -> list:
    return list(f.feed(AccountSnapshotReceived(0, [], [], rows)))


def row(cid: str, price: int = 900) -> OpenOrderRow:
    return OpenOrderRow(0, cid, 5, Side.BUY, price, 2, 0, TimeInForce.GTC, False)


def test_lost_order_is_settled_after_two_snapshots_and_requoted() -> None:
    f, (bid, ask) = quoting()
    out = snapshot(f, [row(ask)])
    assert f.state.order(bid).status is OrderStatus.NEW  # one snapshot may be stale
    out = snapshot(f, [row(ask)])
    assert f.state.order(bid).status is OrderStatus.EXPIRED
    assert [d.action for d in out if isinstance(d, RecordDecision)] == ["settle_missing"]
    assert any(isinstance(i, PlaceOrder) and i.side is Side.BUY for i in out)  # re-quoted


def test_orders_of_an_earlier_session_are_settled_at_once() -> None:
    f, (bid, ask) = quoting()
    f.feed(SessionStarted(2, "live"))
    out = snapshot(f, [])
    assert f.state.order(bid).status is OrderStatus.EXPIRED
    assert f.state.order(ask).status is OrderStatus.EXPIRED
    assert len([d for d in out if isinstance(d, RecordDecision)]) == 2


def test_orphans_of_ours_are_cancelled_manual_orders_left_alone() -> None:
    f, (bid, ask) = quoting()
    f.feed(SessionStarted(2, "live"))
    old = "r1-999-0"  # ours, from session 1, unknown to this journal
    new = "r2-999-0"  # ours, this session: may be in flight, wait for a second look
    out = snapshot(f, [row(bid), row(ask), row(old), row(new), row("web_123")])
    assert [c.client_id for c in out if isinstance(c, CancelOrder)] == [old]
    out = snapshot(f, [row(bid), row(ask), row(new), row("web_123")])
    assert [c.client_id for c in out if isinstance(c, CancelOrder)] == [new]
