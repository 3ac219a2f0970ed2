"""The order life cycle as one transition table.

Rules for editing (h11 style):

1. Everything that decides an order's status lives in ``ORDER_TRANSITIONS``. Code elsewhere
   never assigns ``Order.status`` directly; it calls ``next_status``.
2. A (status, trigger) pair that is not in the table is illegal: ``next_status`` raises
   ``InvalidEvent`` *before* anything changes, and the reducer journals an alert.
3. Binance delivers the REST answer and the user-stream events on different connections, so
   they race: a fill can arrive before the ack, an ack after a fill, a fill after a cancel the
   REST call reported. Those orders are in the table (as no-ops where the status must not go
   backwards); duplicates of a terminal event are no-ops too, and fills are de-duplicated by
   trade id before they get here.

``UNKNOWN`` is Binance's "execution status unknown" (timeout, 503, WS-API disconnect): the
order may or may not exist. Only a later fact (ack, fill, cancel, reject, or a reconciliation
snapshot) moves it on; the strategy must not place a replacement meanwhile.
"""

from __future__ import annotations

from enum import IntEnum

from ._errors import InvalidEvent

__all__ = ["ORDER_TRANSITIONS", "OrderStatus", "Trigger", "is_open", "next_status"]


class OrderStatus(IntEnum):
    PENDING_NEW = 1  #: sent, no answer yet
    NEW = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    CANCELED = 5
    REJECTED = 6
    EXPIRED = 7
    UNKNOWN = 8  #: outcome of the request unknown; may or may not exist


class Trigger(IntEnum):
    ACCEPTED = 1
    REJECTED = 2
    FILL = 3  #: a fill that leaves some quantity open
    FILL_FINAL = 4  #: a fill that completes the order
    CANCELED = 5
    EXPIRED = 6
    UNKNOWN = 7
    AMENDED = 8


S = OrderStatus
T = Trigger

_OPEN = (S.PENDING_NEW, S.NEW, S.PARTIALLY_FILLED, S.UNKNOWN)

ORDER_TRANSITIONS: dict[tuple[OrderStatus, Trigger], OrderStatus] = {
    # the request is out, no answer yet
    (S.PENDING_NEW, T.ACCEPTED): S.NEW,
    (S.PENDING_NEW, T.REJECTED): S.REJECTED,
    (S.PENDING_NEW, T.FILL): S.PARTIALLY_FILLED,  # user stream beat the REST ack
    (S.PENDING_NEW, T.FILL_FINAL): S.FILLED,
    (S.PENDING_NEW, T.CANCELED): S.CANCELED,
    (S.PENDING_NEW, T.EXPIRED): S.EXPIRED,
    (S.PENDING_NEW, T.UNKNOWN): S.UNKNOWN,
    # outcome unknown: any fact settles it
    (S.UNKNOWN, T.ACCEPTED): S.NEW,
    (S.UNKNOWN, T.REJECTED): S.REJECTED,
    (S.UNKNOWN, T.FILL): S.PARTIALLY_FILLED,
    (S.UNKNOWN, T.FILL_FINAL): S.FILLED,
    (S.UNKNOWN, T.CANCELED): S.CANCELED,
    (S.UNKNOWN, T.EXPIRED): S.EXPIRED,
    (S.UNKNOWN, T.UNKNOWN): S.UNKNOWN,
    # resting
    (S.NEW, T.ACCEPTED): S.NEW,  # duplicate ack
    (S.NEW, T.FILL): S.PARTIALLY_FILLED,
    (S.NEW, T.FILL_FINAL): S.FILLED,
    (S.NEW, T.CANCELED): S.CANCELED,
    (S.NEW, T.EXPIRED): S.EXPIRED,
    (S.NEW, T.AMENDED): S.NEW,
    (S.NEW, T.UNKNOWN): S.NEW,  # an amend/cancel whose outcome is unknown: still open
    (S.PARTIALLY_FILLED, T.ACCEPTED): S.PARTIALLY_FILLED,  # late ack
    (S.PARTIALLY_FILLED, T.FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, T.FILL_FINAL): S.FILLED,
    (S.PARTIALLY_FILLED, T.CANCELED): S.CANCELED,
    (S.PARTIALLY_FILLED, T.EXPIRED): S.EXPIRED,
    (S.PARTIALLY_FILLED, T.AMENDED): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, T.UNKNOWN): S.PARTIALLY_FILLED,
    # terminal: late or repeated news never reopens an order
    (S.FILLED, T.ACCEPTED): S.FILLED,
    (S.FILLED, T.FILL_FINAL): S.FILLED,
    (S.FILLED, T.UNKNOWN): S.FILLED,
    (S.CANCELED, T.ACCEPTED): S.CANCELED,
    (S.CANCELED, T.CANCELED): S.CANCELED,
    (S.CANCELED, T.FILL): S.CANCELED,  # a fill that happened before the cancel, told late
    (S.CANCELED, T.FILL_FINAL): S.CANCELED,
    (S.CANCELED, T.UNKNOWN): S.CANCELED,
    (S.EXPIRED, T.ACCEPTED): S.EXPIRED,
    (S.EXPIRED, T.EXPIRED): S.EXPIRED,
    (S.EXPIRED, T.FILL): S.EXPIRED,  # IOC: fills are reported, then the expiry
    (S.EXPIRED, T.FILL_FINAL): S.EXPIRED,
    (S.EXPIRED, T.UNKNOWN): S.EXPIRED,
    (S.REJECTED, T.REJECTED): S.REJECTED,
    (S.REJECTED, T.UNKNOWN): S.REJECTED,
}


def next_status(status: OrderStatus, trigger: Trigger, client_id: str) -> OrderStatus:
    """The status after ``trigger``; raises InvalidEvent (changing nothing) if illegal."""
    try:
        return ORDER_TRANSITIONS[status, trigger]
    except KeyError:
        raise InvalidEvent(
            "illegal_order_transition", f"order {client_id}: {status.name} -> {trigger.name}"
        ) from None


def is_open(status: OrderStatus) -> bool:
    return status in _OPEN
