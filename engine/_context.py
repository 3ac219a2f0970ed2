"""What a strategy sees and may do during one reducer step.

The context is the strategy's only door to the world: it reads the state and *requests*
actions, which become intents. It also does the bookkeeping every action needs (a new order is
recorded as PENDING_NEW with a client id derived from the journal; a cancel marks the order
``cancel_pending``), so strategies cannot forget it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ._book import OrderBook
from ._events import OpenOrderRow, Side, TimeInForce, TopOfBookUpdated
from ._instrument import Instrument
from ._intents import (
    AlertLevel,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    CancelTimer,
    Intent,
    OrderType,
    PlaceOrder,
    RaiseAlert,
    RecordDecision,
    RequestSnapshot,
    ScheduleTimer,
    SnapshotKind,
)
from ._order_state import Trigger, next_status
from ._state import EngineState, Order, Position

__all__ = ["CLIENT_ID_RE", "NO_INTENTS", "Context"]

# Enum members looked up on hot paths, bound once: on CPython 3.11 `Enum.MEMBER` costs
# ~100 ns per lookup (a module constant ~10 ns)
_ORDERTYPE_LIMIT = OrderType.LIMIT


#: Binance's rule for newClientOrderId
CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")

NO_INTENTS: Sequence[Intent] = ()


class Context:
    __slots__ = ("_k", "_k_seq", "intents", "state")

    def __init__(self, state: EngineState) -> None:
        self.state = state
        self.intents: list[Intent] = []
        self._k = 0  # orders placed in step ``_k_seq``, for unique client ids
        self._k_seq = -1

    # -- step bookkeeping (used by the reducer) ------------------------------------------

    def take(self) -> Sequence[Intent]:
        if not self.intents:
            return NO_INTENTS
        out = self.intents
        self.intents = []
        self.state.stats["intents"] += len(out)
        return out

    # -- reading -------------------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        return self.state.now_ns

    @property
    def seq(self) -> int:
        return self.state.seq

    def instrument(self, inst: int) -> Instrument:
        return self.state.instruments[inst]

    def top(self, inst: int) -> TopOfBookUpdated:
        return self.state.tops[inst]

    def book(self, inst: int) -> OrderBook:
        return self.state.books[inst]

    def position(self, inst: int) -> Position:
        return self.state.position(inst)

    def order(self, client_id: str) -> Order | None:
        return self.state.order(client_id)

    # -- acting --------------------------------------------------------------------------

    def next_client_id(self) -> str:
        """``<prefix><session>-<seq>-<k>``: unique per journal, derived from it, Binance-valid."""
        st = self.state
        if self._k_seq != st.seq:
            self._k_seq = st.seq
            self._k = 0
        k = self._k
        self._k = k + 1
        return f"{st.client_id_prefix}{st.session}-{st.seq}-{k}"

    def place(
        self,
        inst: int,
        side: Side,
        price: int,
        qty: int,
        *,
        tif: TimeInForce = TimeInForce.GTX,
        order_type: OrderType = OrderType.LIMIT,
        reduce_only: bool = False,
        tag: str = "",
    ) -> Order:
        st = self.state
        cid = self.next_client_id()
        order = Order(cid, inst, side, price, qty, tif, order_type, reduce_only, st.seq, tag)
        order.updated_ns = st.now_ns
        st.open_orders[cid] = order
        st.stats["orders_placed"] += 1
        self.intents.append(
            PlaceOrder(inst, cid, side, price, qty, tif, order_type, reduce_only, tag)
        )
        return order

    def adopt(self, row: OpenOrderRow, tag: str, reason: str) -> Order:
        """Take over an order the exchange reports open but the engine does not know (an
        earlier process's order found by reconciliation). No intent is sent: the order exists;
        the adoption is journaled as a decision."""
        st = self.state
        order = Order(
            row.client_id,
            row.inst,
            row.side,
            row.price,
            row.qty,
            row.tif,
            _ORDERTYPE_LIMIT,
            row.reduce_only,
            st.seq,
            tag,
        )
        order.order_id = order_id = row.order_id
        order.filled = row.filled
        order.status = next_status(order.status, Trigger.ACCEPTED, row.client_id)
        if row.filled:
            order.status = next_status(order.status, Trigger.FILL, row.client_id)
        order.updated_ns = st.now_ns
        st.open_orders[row.client_id] = order
        self.decide(
            "reconcile",
            "adopt_order",
            "open_on_exchange",
            f"{row.client_id} #{order_id} {reason}",
            row.inst,
        )
        return order

    def settle_missing(self, order: Order, reason: str) -> None:
        """Close an order the exchange no longer has (its final event was lost): it is marked
        EXPIRED locally. A fill told later still counts (the engine accepts late fills on a
        closed order). Journaled as a decision."""
        st = self.state
        order.status = next_status(order.status, Trigger.EXPIRED, order.client_id)
        order.cancel_pending = False
        order.updated_ns = st.now_ns
        st.close_order(order)
        self.decide(
            "reconcile",
            "settle_missing",
            "absent_on_exchange",
            f"{order.client_id} {reason}",
            order.inst,
        )

    def cancel(self, order: Order) -> None:
        if order.cancel_pending or not order.is_open:
            return
        order.cancel_pending = True
        self.state.stats["cancels_sent"] += 1
        self.intents.append(CancelOrder(order.inst, order.client_id))

    def cancel_all(self, inst: int, reason: str) -> None:
        for o in self.state.orders_for(inst):
            o.cancel_pending = True
        self.intents.append(CancelAllOrders(inst, reason))

    def amend(self, order: Order, price: int, qty: int) -> None:
        self.intents.append(AmendOrder(order.inst, order.client_id, order.side, price, qty))

    def schedule(self, at_ns: int, key: str) -> int:
        st = self.state
        timer_id = st.next_timer_id
        st.next_timer_id = timer_id + 1
        st.timers[timer_id] = key
        self.intents.append(ScheduleTimer(timer_id, at_ns))
        return timer_id

    def cancel_timer(self, timer_id: int) -> None:
        if self.state.timers.pop(timer_id, None) is not None:
            self.intents.append(CancelTimer(timer_id))

    def alert(self, level: AlertLevel, code: str, message: str) -> None:
        self.state.stats["alerts"] += 1
        self.intents.append(RaiseAlert(level, code, message))

    def decide(self, category: str, action: str, code: str, message: str, inst: int = -1) -> None:
        """Journal a decision and its reason (a risk denial or trip, a repair, a pause)."""
        self.state.stats["decisions"] = self.state.stats.get("decisions", 0) + 1
        self.intents.append(RecordDecision(category, action, code, inst, message))

    def request_snapshot(self, kind: SnapshotKind, inst: int, reason: str) -> None:
        self.intents.append(RequestSnapshot(kind, inst, reason))
