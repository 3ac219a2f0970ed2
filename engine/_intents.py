"""Intents: what the reducer wants done. Imperative names; same editing rules as events.

An intent is a request, not a fact: the executor (live) or the simulated exchange (backtest)
carries it out and the outcome comes back as an event. Every intent the reducer produces is
journaled, so ``replay --verify`` can compare what the code does now with what it did then.
"""

from __future__ import annotations

from enum import IntEnum

import msgspec

from ._events import Side, TimeInForce

__all__ = [
    "INTENT_TYPES",
    "AlertLevel",
    "AmendOrder",
    "CancelAllOrders",
    "CancelOrder",
    "CancelTimer",
    "Intent",
    "OrderType",
    "PlaceOrder",
    "RaiseAlert",
    "RecordDecision",
    "RequestSnapshot",
    "ScheduleTimer",
    "SnapshotKind",
]


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2


class SnapshotKind(IntEnum):
    BOOK = 1  # GET /fapi/v1/depth, answered by BookSnapshotReceived
    ACCOUNT = 2  # open orders + positions + balances, answered by AccountSnapshotReceived


class AlertLevel(IntEnum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3


class _Intent(msgspec.Struct, frozen=True, array_like=True, gc=False, tag_field="t"):
    """Base of every intent; not itself an intent."""


class PlaceOrder(_Intent, frozen=True, tag=1):
    inst: int
    client_id: str
    side: Side
    price: int  # ticks (ignored for MARKET)
    qty: int  # lots
    tif: TimeInForce = TimeInForce.GTC
    order_type: OrderType = OrderType.LIMIT
    reduce_only: bool = False
    #: the strategy's label for the order (grid ``g:<slot ticks>:<E|X>``, quoter ``q:<b|a><level>``);
    #: never sent to the exchange, kept so SQL can group fills by slot or level
    tag: str = ""


class CancelOrder(_Intent, frozen=True, tag=2):
    inst: int
    client_id: str


class CancelAllOrders(_Intent, frozen=True, tag=3):
    inst: int
    reason: str = ""


class AmendOrder(_Intent, frozen=True, tag=4):
    """Binance's PUT /fapi/v1/order: new price and qty; the order loses its queue place."""

    inst: int
    client_id: str
    side: Side
    price: int
    qty: int


class ScheduleTimer(_Intent, frozen=True, tag=5):
    """Deliver ``TimerFired(timer_id)`` at receive time ``at_ns`` (or as soon after as possible)."""

    timer_id: int
    at_ns: int


class CancelTimer(_Intent, frozen=True, tag=6):
    timer_id: int


class RequestSnapshot(_Intent, frozen=True, tag=7):
    kind: SnapshotKind
    inst: int
    reason: str


class RaiseAlert(_Intent, frozen=True, tag=8):
    level: AlertLevel
    code: str  # short machine-readable kind, e.g. "book_gap", "unknown_fill"
    message: str


class RecordDecision(_Intent, frozen=True, tag=9):
    """A decision worth keeping, with its reason: a risk denial, trip or reset, a
    reconciliation repair, a pause or resume. Nothing is executed; it is journaled so that
    replay and SQL show *why* the engine did (or did not do) something."""

    category: str  # "risk" | "reconcile" | "strategy" | "operator"
    action: str  # "deny", "trip", "reset", "adopt", "cancel", "replace", "pause", "resume", ...
    code: str  # machine-readable reason, e.g. "max_position", "daily_loss", "orphan_order"
    inst: int  # -1 when not about one instrument
    message: str


INTENT_TYPES: tuple[type[_Intent], ...] = (
    PlaceOrder,
    CancelOrder,
    CancelAllOrders,
    AmendOrder,
    ScheduleTimer,
    CancelTimer,
    RequestSnapshot,
    RaiseAlert,
    RecordDecision,
)

Intent = (
    PlaceOrder
    | CancelOrder
    | CancelAllOrders
    | AmendOrder
    | ScheduleTimer
    | CancelTimer
    | RequestSnapshot
    | RaiseAlert
    | RecordDecision
)
