"""The reducer's state: instruments, books, orders, positions, timers, the strategy.

Mutable on purpose (copying books per tick is far too slow in Python); purity means the next
state and the intents depend only on (state, event). Every container here is a dict or a list
iterated in insertion order, never a set: iteration order reaches intents.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._book import OrderBook
from ._events import MarkPriceUpdated, Side, TimeInForce, TopOfBookUpdated
from ._instrument import Instrument
from ._intents import OrderType
from ._order_state import OrderStatus, is_open
from ._reconcile import OrderReconciliation
from ._units import round_half_away

if TYPE_CHECKING:
    from .strategies import Strategy

__all__ = ["EngineState", "Order", "Position"]

# Enum members looked up on hot paths, bound once: on CPython 3.11 `Enum.MEMBER` costs
# ~100 ns per lookup (a module constant ~10 ns)
_ORDERSTATUS_PENDING_NEW = OrderStatus.PENDING_NEW
_SIDE_BUY = Side.BUY


#: closed orders kept for late events (a fill told after the cancel, a duplicate terminal)
CLOSED_ORDERS_KEPT = 10_000


class Order:
    """One of our orders as the engine knows it."""

    __slots__ = (
        "cancel_pending",
        "client_id",
        "created_seq",
        "filled",
        "inst",
        "order_id",
        "order_type",
        "price",
        "qty",
        "reduce_only",
        "reject_code",
        "side",
        "status",
        "tag",
        "tif",
        "trade_ids",
        "updated_ns",
    )

    def __init__(
        self,
        client_id: str,
        inst: int,
        side: Side,
        price: int,
        qty: int,
        tif: TimeInForce,
        order_type: OrderType,
        reduce_only: bool,
        created_seq: int,
        tag: str = "",
    ) -> None:
        self.client_id = client_id
        self.inst = inst
        self.side = side
        self.price = price
        self.qty = qty
        self.tif = tif
        self.order_type = order_type
        self.reduce_only = reduce_only
        self.created_seq = created_seq
        self.tag = tag  # the strategy's label (a grid slot, "bid"/"ask", ...)
        self.status = _ORDERSTATUS_PENDING_NEW
        self.order_id = 0
        self.filled = 0
        self.cancel_pending = False
        self.reject_code = 0  # Binance's code when the order was rejected (e.g. -5022)
        self.trade_ids: list[int] = []
        self.updated_ns = 0

    @property
    def is_open(self) -> bool:
        return is_open(self.status)

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    def describe(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "order_id": self.order_id,
            "side": self.side.name,
            "price": self.price,
            "qty": self.qty,
            "filled": self.filled,
            "status": self.status.name,
            "tif": self.tif.name,
            "reduce_only": self.reduce_only,
            "cancel_pending": self.cancel_pending,
            "tag": self.tag,
        }


class Position:
    """Net position of one instrument (one-way mode) with average-cost accounting.

    ``cost`` is the signed cost basis of the open quantity in tick·lots; realized PnL is kept
    in tick·lots too and converted to money with the instrument's ``minor_per_ticklot``.
    Closing part of a position removes ``cost * closed / |qty|`` from the basis, rounded half
    away from zero; closing all of it removes all of it, so no rounding residue survives a
    flat position.
    """

    __slots__ = (
        "buy_qty",
        "cost",
        "fees",
        "fills",
        "funding",
        "inst",
        "qty",
        "realized",
        "sell_qty",
    )

    def __init__(self, inst: int) -> None:
        self.inst = inst
        self.qty = 0
        self.cost = 0
        self.realized = 0  # tick·lots
        self.fees = 0  # minor units (positive = paid)
        self.funding = 0  # minor units (positive = received)
        self.fills = 0
        self.buy_qty = 0
        self.sell_qty = 0

    def apply_fill(self, side: Side, price: int, qty: int) -> int:
        """Apply one fill; returns the realized PnL of this fill in tick·lots."""
        signed = qty if side is _SIDE_BUY else -qty
        old = self.qty
        self.fills += 1
        if side is _SIDE_BUY:
            self.buy_qty += qty
        else:
            self.sell_qty += qty
        if old == 0 or (old > 0) == (signed > 0):
            self.cost += price * signed
            self.qty = old + signed
            return 0
        closing = min(qty, abs(old))
        removed = (
            self.cost if closing == abs(old) else round_half_away(self.cost * closing, abs(old))
        )
        direction = 1 if old > 0 else -1
        realized = direction * price * closing - removed
        self.realized += realized
        self.cost -= removed
        self.qty = old + signed
        left = qty - closing
        if left:  # flipped through zero: the rest opens a new position at this price
            self.cost = price * (left if signed > 0 else -left)
        return realized

    def unrealized(self, price: int) -> int:
        """Tick·lots of PnL if the position were closed at ``price``."""
        return self.qty * price - self.cost

    def describe(self) -> dict[str, Any]:
        return {
            "qty": self.qty,
            "cost": self.cost,
            "realized_ticklots": self.realized,
            "fees_minor": self.fees,
            "funding_minor": self.funding,
            "fills": self.fills,
        }


class EngineState:
    """Everything the reducer knows. Built from the engine config, then only ``step`` changes it."""

    def __init__(self, strategy: Strategy, client_id_prefix: str = "r") -> None:
        self.strategy = strategy
        self.client_id_prefix = client_id_prefix
        self.session = 0
        self.session_started_seq = 0  # seq of the SessionStarted that opened ``session``
        self.reconciliation = OrderReconciliation()
        self.seq = 0
        self.now_ns = 0
        self.instruments: dict[int, Instrument] = {}
        self.symbols: dict[str, int] = {}
        self.books: dict[int, OrderBook] = {}
        #: best bid/ask per instrument: the newer of the last bookTicker and the synced book
        self.tops: dict[int, TopOfBookUpdated] = {}
        self.marks: dict[int, MarkPriceUpdated] = {}
        self.positions: dict[int, Position] = {}
        self.open_orders: dict[str, Order] = {}
        self.closed_orders: dict[str, Order] = {}
        self.timers: dict[int, str] = {}  # timer id -> the strategy's key
        self.next_timer_id = 1
        self.snapshot_requested: dict[int, bool] = {}
        self.connections: dict[str, int] = {}
        self.balances: dict[str, int] = {}  # margin asset -> wallet balance, minor units
        self.failed: str = ""  # set on an invariant violation; every later step raises
        self.stats: dict[str, int] = {
            "intents": 0,
            "alerts": 0,
            "orders_placed": 0,
            "cancels_sent": 0,
            "fills": 0,
            "book_gaps": 0,
            "bbo_checks": 0,
            "bbo_agree": 0,
            "invalid_events": 0,
        }

    def order(self, client_id: str) -> Order | None:
        o = self.open_orders.get(client_id)
        return o if o is not None else self.closed_orders.get(client_id)

    def orders_for(self, inst: int) -> Iterator[Order]:
        return (o for o in self.open_orders.values() if o.inst == inst)

    def close_order(self, order: Order) -> None:
        """Move a terminal order out of the open set (keeping it for late events)."""
        self.open_orders.pop(order.client_id, None)
        closed = self.closed_orders
        closed[order.client_id] = order
        if len(closed) > CLOSED_ORDERS_KEPT:
            del closed[next(iter(closed))]

    def position(self, inst: int) -> Position:
        pos = self.positions.get(inst)
        if pos is None:
            pos = self.positions[inst] = Position(inst)
        return pos
