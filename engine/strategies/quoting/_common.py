"""What the spread quoters share: the risk wiring, the ladder of quotes, size conversions.

``QuotingStrategy`` forwards every hook the risk service needs (see ``engine/risk``) and
calls the quoter's own ``_on_*`` methods only for its symbol once it is set up. ``Ladder``
keeps one order per *slot* (``b0``, ``a0``, ``b1``, ...; the order's tag is ``q:<slot>``, so
analytics can group fills by level): a slot whose target moved by ``requote_ticks`` or more
is cancelled, and re-placed at the then-current target once the exchange confirmed the
cancel, so a slot never has two orders and a requote happens only when the target tick
changes. Every place and cancel goes through the risk service.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine._context import Context
from engine._events import (
    ConnectionChanged,
    MarkPriceUpdated,
    OperatorCommanded,
    OrderFilled,
    Side,
    TimeInForce,
    TradePrinted,
)
from engine._instrument import Instrument
from engine._intents import AlertLevel
from engine._order_state import OrderStatus
from engine._state import Order
from engine._units import QUOTE_SCALE
from engine.risk import RiskConfig, RiskService
from engine.strategies._base import Strategy

__all__ = ["Ladder", "QuotingStrategy", "Target", "lots_for_value"]

# Enum members looked up on hot paths, bound once: on CPython 3.11 `Enum.MEMBER` costs
# ~100 ns per lookup (a module constant ~10 ns)
_ORDERSTATUS_REJECTED = OrderStatus.REJECTED
_TIMEINFORCE_GTC = TimeInForce.GTC
_TIMEINFORCE_GTX = TimeInForce.GTX


#: (slot, side, price ticks, qty lots)
Target = tuple[str, Side, int, int]


def lots_for_value(ins: Instrument, value: Decimal, price: int) -> int:
    """Fewest lots whose notional at ``price`` is at least ``value`` (quote asset) and at least
    the exchange's min notional and min qty."""
    per_lot = price * ins.minor_per_ticklot
    if per_lot <= 0:
        return 0
    want = max(int(value * QUOTE_SCALE), ins.spec.min_notional)
    lots = -(-want // per_lot)
    return max(lots, ins.spec.min_qty, 1)


class Ladder:
    """One order per slot, re-placed when its target moves (see the module docstring)."""

    __slots__ = (
        "inst",
        "limit",
        "reduce_only",
        "requote_ticks",
        "requotes",
        "risk",
        "skipped",
        "slots",
        "tif",
    )

    def __init__(
        self,
        risk: RiskService,
        inst: int,
        *,
        post_only: bool,
        requote_ticks: int,
        reduce_only: bool = False,
    ) -> None:
        self.risk = risk
        self.inst = inst
        self.tif = _TIMEINFORCE_GTX if post_only else _TIMEINFORCE_GTC
        self.requote_ticks = requote_ticks
        self.reduce_only = reduce_only
        self.slots: dict[str, Order] = {}
        self.requotes = 0
        #: the strategy's own inventory bound in lots (0 = none): a quote is not placed when
        #: the position plus every open order on its side plus it could pass the bound
        self.limit = 0
        self.skipped = 0

    def sync(self, ctx: Context, targets: list[Target]) -> None:
        want: dict[str, Target] = {t[0]: t for t in targets}
        risk = self.risk
        for slot, order in list(self.slots.items()):
            if not order.is_open:
                del self.slots[slot]
                continue
            if order.cancel_pending or order.order_id == 0:
                continue  # wait for the exchange's answer first
            t = want.get(slot)
            if t is None:
                risk.cancel(ctx, order)
                continue
            moved = abs(order.price - t[2]) >= self.requote_ticks
            resized = order.qty != t[3] and order.remaining != t[3]
            if moved or resized:
                self.requotes += 1
                risk.cancel(ctx, order)
        slots = self.slots
        for slot, side, price, qty in targets:
            if slot in slots or price <= 0 or qty <= 0:
                continue
            if self.limit and not self._fits(ctx, side, qty):
                self.skipped += 1
                continue
            placed = risk.place(
                ctx,
                self.inst,
                side,
                price,
                qty,
                tif=self.tif,
                reduce_only=self.reduce_only,
                tag=f"q:{slot}",
            )
            if placed is not None:
                slots[slot] = placed

    def _fits(self, ctx: Context, side: Side, qty: int) -> bool:
        pos = ctx.position(self.inst).qty
        same = sum(o.remaining for o in ctx.state.orders_for(self.inst) if o.side is side)
        worst = abs(pos + int(side) * (same + qty))
        return worst <= self.limit or worst <= abs(pos)

    def cancel_all(self, ctx: Context) -> None:
        self.sync(ctx, [])

    def describe(self) -> dict[str, Any]:
        return {slot: o.describe() for slot, o in self.slots.items()}


class QuotingStrategy(Strategy):
    """Base of the spread quoters: symbol binding, risk forwarding, disabled state."""

    def __init__(self, symbol: str, risk: RiskConfig) -> None:
        self.symbol = symbol
        self.risk = RiskService(risk)
        self.inst = -1
        self.ins: Instrument | None = None
        self.disabled = ""

    # -- the quoter's part -------------------------------------------------------------

    def _setup(self, ctx: Context, ins: Instrument) -> None:
        """Convert the config to lots/ticks; raise ValueError if it does not fit."""

    def _on_top(self, ctx: Context) -> None: ...

    def _on_book(self, ctx: Context) -> None: ...

    def _on_trade(self, ctx: Context, ev: TradePrinted) -> None: ...

    def _on_fill(self, ctx: Context, order: Order | None, ev: OrderFilled) -> None: ...

    def _on_closed(self, ctx: Context, order: Order) -> None: ...

    def _on_timer(self, ctx: Context, key: str) -> None: ...

    def _on_risk(self, ctx: Context) -> None:
        """After a risk check (trip or reset may have happened)."""

    # -- hooks -------------------------------------------------------------------------

    def on_instrument(self, ctx: Context, instrument: Instrument) -> None:
        if instrument.symbol != self.symbol:
            return
        try:
            self._setup(ctx, instrument)
        except ValueError as e:
            self.disabled = f"config does not fit {instrument.symbol}: {e}"
            ctx.alert(AlertLevel.CRITICAL, "strategy_disabled", self.disabled)
            return
        self.inst = instrument.inst
        self.ins = instrument
        self.risk.on_instrument(ctx, instrument)

    def _ours(self, inst: int) -> bool:
        return inst == self.inst and not self.disabled

    def on_top(self, ctx: Context, inst: int) -> None:
        if self._ours(inst):
            self.risk.on_market(ctx, inst)
            self._on_top(ctx)

    def on_book(self, ctx: Context, inst: int) -> None:
        if self._ours(inst):
            self.risk.on_market(ctx, inst)
            self._on_book(ctx)

    def on_trade(self, ctx: Context, ev: TradePrinted) -> None:
        if self._ours(ev.inst):
            self.risk.on_market(ctx, ev.inst)
            self._on_trade(ctx, ev)

    def on_mark(self, ctx: Context, ev: MarkPriceUpdated) -> None:
        if self._ours(ev.inst):
            self.risk.on_mark(ctx, ev)
            self._on_risk(ctx)

    def on_fill(self, ctx: Context, order: Order | None, ev: OrderFilled) -> None:
        if self._ours(ev.inst):
            self.risk.on_fill(ctx, order, ev)
            self._on_fill(ctx, order, ev)

    def on_order(self, ctx: Context, order: Order) -> None:
        # a refusal (e.g. -5022, the quote would have crossed) is retried on the next market
        # event, not at once: the same price without new data would loop on the order budget
        if (
            self._ours(order.inst)
            and not order.is_open
            and order.status is not _ORDERSTATUS_REJECTED
        ):
            self._on_closed(ctx, order)

    def on_timer(self, ctx: Context, key: str) -> None:
        if self.disabled:
            return
        if self.risk.on_timer(ctx, key):
            self._on_risk(ctx)
            return
        self._on_timer(ctx, key)

    def on_connection(self, ctx: Context, ev: ConnectionChanged) -> None:
        if not self.disabled:
            self.risk.on_connection(ctx, ev)
            self._on_risk(ctx)

    def on_operator(self, ctx: Context, ev: OperatorCommanded) -> None:
        if not self.disabled and self.risk.on_operator(ctx, ev):
            self._on_risk(ctx)

    def _base_describe(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "disabled": self.disabled, "risk": self.risk.describe()}
