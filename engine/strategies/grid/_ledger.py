"""The slot ledger: one slot per grid price, each with its own state machine.

Rules for editing (h11 style):

1. A slot's state is the triple (lock, holding, order): ``lock`` in FREE / PENDING / LOCKED
   (no order / an order sent without answer / an order the exchange accepted), ``holding`` in
   EMPTY / FILLED (whether the slot owns a position to exit), ``order`` in NONE / ENTRY / EXIT
   (the side of the slot's single live order: ENTRY buys in long mode, sells in short mode).
2. ``SLOT_TRANSITIONS`` is the whole machine. Code never assigns those three fields; it calls
   ``Slot.apply(trigger)``, which looks the transition up and raises ``InvalidEvent`` before
   anything changes when the pair is not in the table (e.g. a second entry on a slot that
   already has one, or an exit for a slot that holds nothing).
3. Quantities move only through ``Slot.apply``'s ``delta`` argument, so a slot's holding is
   always the sum of its fills (checked by the property test).

OpenSQT's slot (ref/opensqt.md §2) has the same three dimensions; its order-status detail
(PLACED/CONFIRMED/PARTIALLY_FILLED/CANCEL_REQUESTED) lives here in the engine's own order
table, looked up through the slot's ``client_id``. Because a slot knows the *client id* of
its one live order, an event for any other order can never touch it: OpenSQT's "stale guard"
holds always, not only while an id is set (its bugs §7.4 and §7.6).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from engine._errors import InvalidEvent

__all__ = ["SLOT_TRANSITIONS", "Holding", "Lock", "OrderRole", "Slot", "SlotTrigger"]


class Lock(IntEnum):
    FREE = 0
    PENDING = 1
    LOCKED = 2


class Holding(IntEnum):
    EMPTY = 0
    FILLED = 1


class OrderRole(IntEnum):
    NONE = 0
    ENTRY = 1
    EXIT = 2


class SlotTrigger(IntEnum):
    PLACE_ENTRY = 1
    PLACE_EXIT = 2
    ACCEPTED = 3
    REJECTED = 4  # the placement failed: nothing rests, nothing changed hands
    ENTRY_PARTIAL = 5
    ENTRY_FILLED = 6
    ENTRY_ENDED_EMPTY = 7  # cancelled/expired with nothing filled
    ENTRY_ENDED_PARTIAL = 8  # cancelled/expired after a partial fill: the slot holds that
    EXIT_PARTIAL = 9
    EXIT_FILLED = 10  # the holding is gone
    EXIT_FILLED_RESIDUAL = 11  # the exit filled but the slot still holds something (merged dust)
    EXIT_ENDED = 12  # cancelled/expired/rejected while resting: the holding stays
    ADOPT_ENTRY = 13  # reconciliation: an open entry order found on the exchange
    ADOPT_EXIT = 14
    ADOPT_HOLDING = 15  # reconciliation/restart: position found on the exchange
    DROP_HOLDING = 16  # reconciliation: the exchange holds less than the ledger
    ADD_HOLDING = 17  # dust merged into this slot
    REDUCE_HOLDING = 18  # reconciliation: part of the holding is gone


L, H, R, T = Lock, Holding, OrderRole, SlotTrigger
State = tuple[Lock, Holding, OrderRole]

_IDLE_EMPTY = (L.FREE, H.EMPTY, R.NONE)
_IDLE_FILLED = (L.FREE, H.FILLED, R.NONE)

SLOT_TRANSITIONS: dict[tuple[State, SlotTrigger], State] = {
    # entries
    (_IDLE_EMPTY, T.PLACE_ENTRY): (L.PENDING, H.EMPTY, R.ENTRY),
    ((L.PENDING, H.EMPTY, R.ENTRY), T.ACCEPTED): (L.LOCKED, H.EMPTY, R.ENTRY),
    ((L.LOCKED, H.EMPTY, R.ENTRY), T.ACCEPTED): (L.LOCKED, H.EMPTY, R.ENTRY),
    ((L.PENDING, H.EMPTY, R.ENTRY), T.REJECTED): _IDLE_EMPTY,
    ((L.PENDING, H.EMPTY, R.ENTRY), T.ENTRY_PARTIAL): (L.LOCKED, H.EMPTY, R.ENTRY),
    ((L.LOCKED, H.EMPTY, R.ENTRY), T.ENTRY_PARTIAL): (L.LOCKED, H.EMPTY, R.ENTRY),
    ((L.PENDING, H.EMPTY, R.ENTRY), T.ENTRY_FILLED): _IDLE_FILLED,
    ((L.LOCKED, H.EMPTY, R.ENTRY), T.ENTRY_FILLED): _IDLE_FILLED,
    ((L.PENDING, H.EMPTY, R.ENTRY), T.ENTRY_ENDED_EMPTY): _IDLE_EMPTY,
    ((L.LOCKED, H.EMPTY, R.ENTRY), T.ENTRY_ENDED_EMPTY): _IDLE_EMPTY,
    ((L.PENDING, H.EMPTY, R.ENTRY), T.ENTRY_ENDED_PARTIAL): _IDLE_FILLED,
    ((L.LOCKED, H.EMPTY, R.ENTRY), T.ENTRY_ENDED_PARTIAL): _IDLE_FILLED,
    # exits
    (_IDLE_FILLED, T.PLACE_EXIT): (L.PENDING, H.FILLED, R.EXIT),
    ((L.PENDING, H.FILLED, R.EXIT), T.ACCEPTED): (L.LOCKED, H.FILLED, R.EXIT),
    ((L.LOCKED, H.FILLED, R.EXIT), T.ACCEPTED): (L.LOCKED, H.FILLED, R.EXIT),
    ((L.PENDING, H.FILLED, R.EXIT), T.REJECTED): _IDLE_FILLED,
    ((L.PENDING, H.FILLED, R.EXIT), T.EXIT_PARTIAL): (L.LOCKED, H.FILLED, R.EXIT),
    ((L.LOCKED, H.FILLED, R.EXIT), T.EXIT_PARTIAL): (L.LOCKED, H.FILLED, R.EXIT),
    ((L.PENDING, H.FILLED, R.EXIT), T.EXIT_FILLED): _IDLE_EMPTY,
    ((L.LOCKED, H.FILLED, R.EXIT), T.EXIT_FILLED): _IDLE_EMPTY,
    ((L.PENDING, H.FILLED, R.EXIT), T.EXIT_FILLED_RESIDUAL): _IDLE_FILLED,
    ((L.LOCKED, H.FILLED, R.EXIT), T.EXIT_FILLED_RESIDUAL): _IDLE_FILLED,
    ((L.PENDING, H.FILLED, R.EXIT), T.EXIT_ENDED): _IDLE_FILLED,
    ((L.LOCKED, H.FILLED, R.EXIT), T.EXIT_ENDED): _IDLE_FILLED,
    # reconciliation and restart
    (_IDLE_EMPTY, T.ADOPT_ENTRY): (L.LOCKED, H.EMPTY, R.ENTRY),
    (_IDLE_FILLED, T.ADOPT_EXIT): (L.LOCKED, H.FILLED, R.EXIT),
    (_IDLE_EMPTY, T.ADOPT_HOLDING): _IDLE_FILLED,
    (_IDLE_FILLED, T.ADOPT_HOLDING): _IDLE_FILLED,
    (_IDLE_FILLED, T.DROP_HOLDING): _IDLE_EMPTY,
    (_IDLE_FILLED, T.ADD_HOLDING): _IDLE_FILLED,
    (_IDLE_EMPTY, T.ADD_HOLDING): _IDLE_FILLED,
    (_IDLE_FILLED, T.REDUCE_HOLDING): _IDLE_FILLED,
}


class Slot:
    """One grid level. ``price`` is the slot's nominal entry price in ticks."""

    __slots__ = (
        "client_id",
        "dust_flagged",
        "entries",
        "exits",
        "failures",
        "holding",
        "lock",
        "order",
        "order_filled",
        "post_only_fails",
        "price",
        "qty",
        "realized",
    )

    def __init__(self, price: int) -> None:
        self.price = price
        self.lock = Lock.FREE
        self.holding = Holding.EMPTY
        self.order = OrderRole.NONE
        self.qty = 0  # lots held by this slot
        self.client_id = ""  # the slot's one live order, "" if none
        self.order_filled = 0  # lots filled so far on that order
        self.post_only_fails = 0  # -5022 answers since the last fill
        self.failures = 0  # other refusals in a row
        self.dust_flagged = False  # the "too small to exit" alert was raised
        self.entries = 0  # completed round-trip counters (statistics)
        self.exits = 0
        self.realized = 0  # tick·lots realized on this slot's exits (statistics)

    @property
    def state(self) -> State:
        return (self.lock, self.holding, self.order)

    @property
    def idle(self) -> bool:
        return self.lock is Lock.FREE

    def apply(self, trigger: SlotTrigger, *, delta: int = 0, client_id: str | None = None) -> None:
        """Take ``trigger``; ``delta`` lots added to (entry fills, adoption) or removed from
        (exit fills, drops) the holding. Raises InvalidEvent, changing nothing, if illegal."""
        key = (self.state, trigger)
        new = SLOT_TRANSITIONS.get(key)
        if new is None:
            raise InvalidEvent(
                "illegal_slot_transition",
                f"slot {self.price}: {self.lock.name}/{self.holding.name}/{self.order.name} -> {trigger.name}",
            )
        qty = self.qty + delta
        if qty < 0:
            raise InvalidEvent(
                "slot_underflow", f"slot {self.price}: holding {self.qty} - {-delta} < 0"
            )
        # FILLED means a holding; EMPTY means none, except while an entry is filling
        if (new[1] is Holding.FILLED) != (qty > 0) and not (
            new[1] is Holding.EMPTY and new[2] is OrderRole.ENTRY
        ):
            raise InvalidEvent(
                "slot_quantity",
                f"slot {self.price}: {trigger.name} would leave {new[1].name} with {qty} lots",
            )
        self.lock, self.holding, self.order = new
        self.qty = qty
        if client_id is not None:
            self.client_id = client_id
            self.order_filled = 0
        if new[0] is Lock.FREE:
            self.client_id = ""
            self.order_filled = 0

    def describe(self) -> dict[str, Any]:
        return {
            "price": self.price,
            "state": f"{self.lock.name}/{self.holding.name}/{self.order.name}",
            "qty": self.qty,
            "client_id": self.client_id,
            "post_only_fails": self.post_only_fails,
            "entries": self.entries,
            "exits": self.exits,
            "realized_ticklots": self.realized,
        }
