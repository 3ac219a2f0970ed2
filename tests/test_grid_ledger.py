"""Property: the slot ledger stays consistent under any order of exchange answers.

Random streams of prices, acks, partial and full fills, duplicates, cancels, late events for
finished orders and refusals; after every step: the ledger's position equals the sum of the
fills, no slot has two live orders, and no exit is larger than its slot's holding.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine._errors import InvalidEvent
from engine._events import OrderExpired
from engine._intents import RaiseAlert
from engine._order_state import OrderStatus
from engine.strategies.grid import SLOT_TRANSITIONS, Holding, Lock, OrderRole, Slot, SlotTrigger

from .grid_harness import GridHarness

PRICES = st.integers(min_value=299_000, max_value=301_000)


class LedgerMachine(RuleBasedStateMachine):
    @initialize(mode=st.sampled_from(["long", "short", "neutral"]))
    def start(self, mode: str) -> None:
        self.h = GridHarness(
            mode=mode, buy_window_size=4, order_cleanup_threshold=12, cleanup_batch_size=4
        )
        self.finished: list[str] = []
        self.outputs: list[object] = []

    def _orders(self, *statuses: OrderStatus) -> list[object]:
        return sorted(
            (o for o in self.h.state.open_orders.values() if o.status in statuses),
            key=lambda o: o.client_id,
        )

    def _note(self, out: list[object]) -> None:
        self.outputs += out

    @rule(price=PRICES)
    def price(self, price: int) -> None:
        self._note(self.h.trade(f"{price / 100:.2f}"))

    @rule(i=st.integers(0, 50))
    def ack(self, i: int) -> None:
        pending = self._orders(OrderStatus.PENDING_NEW)
        if pending:
            self._note(self.h.ack(pending[i % len(pending)]))

    @rule(i=st.integers(0, 50), part=st.integers(1, 10), full=st.booleans())
    def fill(self, i: int, part: int, full: bool) -> None:
        live = self._orders(OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
        if live:
            o = live[i % len(live)]
            remaining = o.qty - o.filled
            q = remaining if full else max(1, min(remaining, part))
            self._note(self.h.fill(o, qty=q))
            if o.status is OrderStatus.FILLED:
                self.finished.append(o.client_id)

    @rule(i=st.integers(0, 50))
    def duplicate_fill_event(self, i: int) -> None:
        # the same execution told twice (same trade id): must not count twice
        fills = [o for o in self.h.state.closed_orders.values() if o.trade_ids]
        fills += [o for o in self.h.state.open_orders.values() if o.trade_ids]
        if fills:
            from engine._events import OrderFilled

            o = fills[i % len(fills)]
            ev = OrderFilled(
                0,
                o.client_id,
                o.order_id,
                o.trade_ids[-1],
                o.side,
                o.price,
                1,
                o.filled,
                o.qty,
                0,
                "USDT",
                True,
                self.h.feeder.t,
            )
            self._note(list(self.h.feed(ev)))

    @rule(i=st.integers(0, 50), expire=st.booleans())
    def cancel(self, i: int, expire: bool) -> None:
        live = self._orders(OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_NEW)
        if live:
            o = live[i % len(live)]
            if expire:
                self._note(
                    list(self.h.feed(OrderExpired(0, o.client_id, o.order_id, self.h.feeder.t)))
                )
            else:
                self._note(self.h.cancel_event(o))
            self.finished.append(o.client_id)

    @rule(i=st.integers(0, 50))
    def late_terminal_event(self, i: int) -> None:
        if self.finished:
            o = self.h.state.order(self.finished[i % len(self.finished)])
            self._note(self.h.cancel_event(o))

    @rule(i=st.integers(0, 50), code=st.sampled_from([-5022, -1003, -2019, -4164]))
    def reject(self, i: int, code: int) -> None:
        pending = self._orders(OrderStatus.PENDING_NEW)
        if pending:
            self._note(self.h.reject(pending[i % len(pending)].client_id, code))

    @invariant()
    def ledger_equals_fills(self) -> None:
        assert self.h.grid.ledger_position() == self.h.state.position(0).qty

    @invariant()
    def one_live_order_per_slot(self) -> None:
        live = Counter(
            ":".join(o.tag.split(":")[1::2])
            for o in self.h.state.open_orders.values()
            if o.tag.startswith("g:")
        )
        assert all(n == 1 for n in live.values()), live

    @invariant()
    def exits_never_exceed_holdings(self) -> None:
        for leg in self.h.grid.legs:
            for slot in leg.slots.values():
                if slot.order is OrderRole.EXIT:
                    order = self.h.state.order(slot.client_id)
                    assert order.qty - order.filled <= slot.qty
                assert (slot.holding is Holding.FILLED) == (
                    slot.qty > 0
                ) or slot.order is OrderRole.ENTRY

    @invariant()
    def no_illegal_transitions(self) -> None:
        bad = [
            i
            for i in self.outputs
            if isinstance(i, RaiseAlert) and i.code.startswith(("illegal_slot", "slot_"))
        ]
        assert not bad, bad


TestLedger = LedgerMachine.TestCase
TestLedger.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=list(HealthCheck)
)


def test_table_refuses_before_changing_anything() -> None:
    slot = Slot(100)
    slot.apply(SlotTrigger.PLACE_ENTRY, client_id="a")
    before = slot.describe()
    for trigger in SlotTrigger:
        if ((Lock.PENDING, Holding.EMPTY, OrderRole.ENTRY), trigger) in SLOT_TRANSITIONS:
            continue
        with pytest.raises(InvalidEvent):
            slot.apply(trigger, delta=1)
        assert slot.describe() == before
