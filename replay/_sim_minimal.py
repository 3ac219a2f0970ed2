"""The minimal exchange model: fixed latency, fills only when a trade prints through a price.

It answers intents the way Binance would, with events delivered after a fixed latency:

* ``PlaceOrder``: after ``order_latency`` the order reaches the exchange; a post-only (GTX)
  order that would cross the current best price is rejected with -5022 (and never rests);
  otherwise it rests and is acknowledged ``response_latency`` later.
* a resting buy fills completely, as maker, at its own price when a trade prints *below* it
  (a sell: *above* it). Trades *at* its price do not fill it: whether it was reached in the
  queue is what the full simulator's queue model decides.
* ``CancelOrder``/``CancelAllOrders``: cancels what is still resting, else -2011.
* ``ScheduleTimer``: ``TimerFired`` at the requested time.

It is deliberately small: the seam (``on_market``, ``submit``, ``pop_due``) is what the
backtest driver needs, and the full simulator plugs into the same seam.
"""

from __future__ import annotations

import heapq
from decimal import Decimal
from typing import Annotated

import msgspec

from engine import (
    RATE_SCALE,
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    CancelRejected,
    CancelTimer,
    Event,
    InstrumentLoaded,
    Intent,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    ScheduleTimer,
    Side,
    TimeInForce,
    TimerFired,
    TopOfBookUpdated,
    TradePrinted,
)
from engine._units import decimal_to_scaled, round_half_away

__all__ = ["MinimalExchange", "MinimalExchangeConfig"]

_MS = 1_000_000


class MinimalExchangeConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: one-way time from our intent to the exchange, in ms
    order_latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    #: one-way time from the exchange's answer back to us, in ms
    response_latency_ms: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    #: fee rates as fractions (0.0002 = 2 bp); negative maker = rebate
    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")


class _Resting(msgspec.Struct):
    inst: int
    client_id: str
    order_id: int
    side: Side
    price: int
    qty: int
    filled: int = 0


class MinimalExchange:
    def __init__(self, config: MinimalExchangeConfig, instruments: list[InstrumentLoaded]) -> None:
        self.config = config
        self.order_latency = int(config.order_latency_ms * _MS)
        self.response_latency = int(config.response_latency_ms * _MS)
        self.maker_rate = decimal_to_scaled(str(config.maker_fee), 8) * (RATE_SCALE // 10**8)
        self.taker_rate = decimal_to_scaled(str(config.taker_fee), 8) * (RATE_SCALE // 10**8)
        self._minor_per_ticklot: dict[int, int] = {}
        self._margin_asset: dict[int, str] = {}
        for spec in instruments:
            self._add_instrument(spec)
        self._queue: list[tuple[int, int, Event]] = []  # (deliver at, tiebreak, event)
        self._actions: list[tuple[int, int, Intent]] = []  # intents reaching the exchange
        self._counter = 0
        self._next_order_id = 1
        self._next_trade_id = 1
        self._resting: dict[str, _Resting] = {}
        self._best: dict[int, tuple[int, int]] = {}  # inst -> (bid, ask)
        self._timers: dict[int, int] = {}

    def _add_instrument(self, spec: InstrumentLoaded) -> None:
        from engine import Instrument

        self._minor_per_ticklot[spec.inst] = Instrument(spec).minor_per_ticklot
        self._margin_asset[spec.inst] = spec.margin_asset

    # -- the seam ------------------------------------------------------------------------

    def next_due(self) -> int | None:
        """Time of the next thing the exchange will do or deliver (None if nothing)."""
        a = self._actions[0][0] if self._actions else None
        q = self._queue[0][0] if self._queue else None
        if a is None:
            return q
        return a if q is None or a < q else q

    def pop_due(self, until_ns: int) -> list[tuple[int, Event]]:
        """Events to deliver at or before ``until_ns``, in delivery order."""
        out: list[tuple[int, Event]] = []
        while True:
            due = self.next_due()
            if due is None or due > until_ns:
                return out
            if self._actions and self._actions[0][0] == due:
                t, _, intent = heapq.heappop(self._actions)
                self._act(t, intent)
                continue
            t, _, ev = heapq.heappop(self._queue)
            out.append((t, ev))

    def on_market(self, t_ns: int, ev: Event) -> None:
        """The exchange sees a market event (before we do)."""
        if type(ev) is TradePrinted:
            self._on_trade(t_ns, ev)
        elif type(ev) is TopOfBookUpdated:
            self._best[ev.inst] = (ev.bid, ev.ask)
        elif type(ev) is InstrumentLoaded:
            self._add_instrument(ev)

    def submit(self, t_ns: int, intent: Intent) -> None:
        """We send ``intent`` at ``t_ns``; it reaches the exchange ``order_latency`` later."""
        if type(intent) is ScheduleTimer:
            self._timers[intent.timer_id] = intent.at_ns
            self._deliver(max(intent.at_ns, t_ns), TimerFired(intent.timer_id, intent.at_ns))
            return
        if type(intent) is CancelTimer:
            self._timers.pop(intent.timer_id, None)
            return
        if type(intent) in (PlaceOrder, CancelOrder, CancelAllOrders, AmendOrder):
            self._counter += 1
            heapq.heappush(self._actions, (t_ns + self.order_latency, self._counter, intent))
        # RequestSnapshot, RaiseAlert: nothing to do in the minimal model

    # -- internals -----------------------------------------------------------------------

    def _deliver(self, at: int, ev: Event) -> None:
        if type(ev) is TimerFired and ev.timer_id not in self._timers:
            return
        self._counter += 1
        heapq.heappush(self._queue, (at, self._counter, ev))

    def _act(self, t: int, intent: Intent) -> None:
        back = t + self.response_latency
        if type(intent) is PlaceOrder:
            bid, ask = self._best.get(intent.inst, (0, 0))
            crosses = (intent.side is Side.BUY and ask and intent.price >= ask) or (
                intent.side is Side.SELL and bid and intent.price <= bid
            )
            if crosses and intent.tif is TimeInForce.GTX:
                self._deliver(
                    back,
                    OrderRejected(
                        intent.inst,
                        intent.client_id,
                        -5022,
                        "Due to the order could not be executed as maker, the Post Only order will be rejected.",
                        t,
                    ),
                )
                return
            oid = self._next_order_id
            self._next_order_id += 1
            self._resting[intent.client_id] = _Resting(
                intent.inst, intent.client_id, oid, intent.side, intent.price, intent.qty
            )
            self._deliver(back, OrderAccepted(intent.inst, intent.client_id, oid, t))
        elif type(intent) is CancelOrder:
            r = self._resting.pop(intent.client_id, None)
            if r is None:
                self._deliver(
                    back,
                    CancelRejected(intent.inst, intent.client_id, -2011, "Unknown order sent.", t),
                )
            else:
                self._deliver(back, OrderCanceled(r.inst, r.client_id, r.order_id, t))
        elif type(intent) is CancelAllOrders:
            for cid in [c for c, r in self._resting.items() if r.inst == intent.inst]:
                r = self._resting.pop(cid)
                self._deliver(back, OrderCanceled(r.inst, r.client_id, r.order_id, t, "cancel all"))
        elif type(intent) is AmendOrder:
            r = self._resting.get(intent.client_id)
            if r is None:
                self._deliver(
                    back,
                    CancelRejected(
                        intent.inst, intent.client_id, -2013, "Order does not exist.", t
                    ),
                )
            elif intent.qty <= r.filled:
                del self._resting[intent.client_id]
                self._deliver(
                    back, OrderCanceled(r.inst, r.client_id, r.order_id, t, "amended below filled")
                )
            else:
                r.price, r.qty = intent.price, intent.qty
                self._deliver(
                    back, OrderAmended(r.inst, r.client_id, r.order_id, r.price, r.qty, t)
                )

    def _on_trade(self, t: int, ev: TradePrinted) -> None:
        if not self._resting:
            return
        hit: list[_Resting] = []
        for r in self._resting.values():
            if r.inst != ev.inst:
                continue
            if (r.side is Side.BUY and ev.price < r.price) or (
                r.side is Side.SELL and ev.price > r.price
            ):
                hit.append(r)
        back = t + self.response_latency
        for r in hit:
            del self._resting[r.client_id]
            qty = r.qty - r.filled
            notional = r.price * qty * self._minor_per_ticklot[r.inst]
            fee = round_half_away(notional * self.maker_rate, RATE_SCALE)
            trade_id = self._next_trade_id
            self._next_trade_id += 1
            self._deliver(
                back,
                OrderFilled(
                    r.inst,
                    r.client_id,
                    r.order_id,
                    trade_id,
                    r.side,
                    r.price,
                    qty,
                    r.qty,
                    r.qty,
                    fee,
                    self._margin_asset[r.inst],
                    True,
                    t,
                ),
            )
