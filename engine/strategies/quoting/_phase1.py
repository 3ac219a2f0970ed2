"""Phase 1: zero-inventory light market making (seed 003 §2.1).

While flat, one small post-only order rests on each side at the touch (or ``offset_ticks``
behind it) and follows it. When one fills, the position is not zero any more and the
strategy stops quoting entries and works the exit:

1. **maker window** (``exit_maker_ms``, counted from the fill that left flat): one
   reduce-only post-only order on the other side for the whole position, at the touch but
   never worse than break-even (the average entry price, plus ``exit_edge_ticks``, rounded in
   our favour); it follows the touch as long as that stays at or better than break-even;
2. **taker fallback**: if the position is still open when the window ends, the maker order
   is cancelled and a reduce-only market order closes what is left (re-sent every
   ``taker_retry_ms`` while the position stays open, e.g. after a reject).

Back to flat, the entries resume. Break-even is on price: set ``exit_edge_ticks`` to cover
the maker fees of your tier (USDC-M pairs have 0 maker fee, so 0 is true break-even there).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec

from engine._context import Context
from engine._events import OrderFilled, Side, TimeInForce
from engine._instrument import Instrument
from engine._intents import OrderType
from engine._state import Order
from engine.risk import RiskConfig

from ._common import Ladder, QuotingStrategy, Target

__all__ = ["Phase1Quoter", "Phase1QuoterConfig"]

_MS = 1_000_000
TAKER_TAG = "x:taker"


class Phase1QuoterConfig(
    msgspec.Struct, tag="phase1", tag_field="kind", forbid_unknown_fields=True, kw_only=True
):
    #: the symbol to quote
    symbol: str
    #: size of each entry quote in the base asset; a multiple of stepSize
    order_qty: Decimal
    #: ticks behind the best bid / ask (0 = join the touch)
    offset_ticks: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    #: move an entry quote only when its target moved at least this many ticks
    requote_ticks: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1
    #: how long the maker exit may try, from the fill that left flat, ms
    exit_maker_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)] = 3000
    #: the exit must earn at least this many ticks over the average entry price
    exit_edge_ticks: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    #: after the window, close with a reduce-only market order
    taker_exit: bool = True
    #: re-send the taker exit this often while the position stays open, ms
    taker_retry_ms: Annotated[int, msgspec.Meta(ge=10, le=3_600_000)] = 1000
    #: post-only (GTX) quotes
    post_only: bool = True
    #: the shared risk limits (engine/risk)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)

    def __post_init__(self) -> None:
        if self.order_qty <= 0:
            raise ValueError("order_qty must be positive")


class Phase1Quoter(QuotingStrategy):
    kind = "phase1"

    def __init__(self, config: Phase1QuoterConfig) -> None:
        super().__init__(config.symbol, config.risk)
        self.config = config
        self.qty = 0
        self.entries: Ladder | None = None
        self.exit: Ladder | None = None
        self.exit_since_ns = 0  # when the position left flat; 0 = flat
        self.exit_timer = 0
        self.taker_mode = False
        self.taker: Order | None = None
        self.round_trips = 0
        self.maker_exits = 0
        self.taker_exits = 0

    def _setup(self, ctx: Context, ins: Instrument) -> None:
        self.qty = ins.qty_scale.to_units(str(self.config.order_qty))
        c = self.config
        self.entries = Ladder(
            self.risk, ins.inst, post_only=c.post_only, requote_ticks=c.requote_ticks
        )
        self.entries.limit = self.qty
        self.exit = Ladder(self.risk, ins.inst, post_only=True, requote_ticks=1, reduce_only=True)

    def _on_top(self, ctx: Context) -> None:
        self._quote(ctx)

    def _on_closed(self, ctx: Context, order: Order) -> None:
        self._quote(ctx)

    def _on_risk(self, ctx: Context) -> None:
        self._quote(ctx)

    def _on_fill(self, ctx: Context, order: Order | None, ev: OrderFilled) -> None:
        pos = ctx.position(self.inst).qty
        if pos and not self.exit_since_ns:
            self.exit_since_ns = ctx.now_ns
            self.exit_timer = ctx.schedule(ctx.now_ns + self.config.exit_maker_ms * _MS, "p1:exit")
        elif not pos and self.exit_since_ns:
            self.round_trips += 1
            if self.taker_mode:
                self.taker_exits += 1
            else:
                self.maker_exits += 1
            self.exit_since_ns = 0
            self.taker_mode = False
            self.taker = None
            if self.exit_timer:
                ctx.cancel_timer(self.exit_timer)
                self.exit_timer = 0
        self._quote(ctx)

    def _on_timer(self, ctx: Context, key: str) -> None:
        if key != "p1:exit":
            return
        self.exit_timer = 0
        pos = ctx.position(self.inst).qty
        if not pos or not self.exit_since_ns:
            return
        if not self.config.taker_exit:
            return
        self.taker_mode = True
        if self.exit is not None:
            self.exit.cancel_all(ctx)
        if self.taker is None or not self.taker.is_open:
            side = Side.SELL if pos > 0 else Side.BUY
            self.taker = self.risk.place(
                ctx,
                self.inst,
                side,
                0,
                abs(pos),
                tif=TimeInForce.GTC,
                order_type=OrderType.MARKET,
                reduce_only=True,
                tag=TAKER_TAG,
            )
        self.exit_timer = ctx.schedule(ctx.now_ns + self.config.taker_retry_ms * _MS, "p1:exit")

    def _quote(self, ctx: Context) -> None:
        if self.entries is None or self.exit is None:
            return
        top = ctx.top(self.inst)
        if not top.valid:
            return
        pos = ctx.position(self.inst)
        entries: list[Target] = []
        exits: list[Target] = []
        if pos.qty == 0:
            if not self.risk.halted:
                off = self.config.offset_ticks
                entries = [
                    ("b0", Side.BUY, top.bid - off, self.qty),
                    ("a0", Side.SELL, top.ask + off, self.qty),
                ]
        elif not self.taker_mode:
            edge = self.config.exit_edge_ticks
            if pos.qty > 0:
                breakeven = -(-pos.cost // pos.qty) + edge  # ceil(average entry) + edge
                exits = [("xa", Side.SELL, max(breakeven, top.ask), pos.qty)]
            else:
                breakeven = pos.cost // pos.qty - edge  # floor(average entry) - edge
                exits = [("xb", Side.BUY, min(breakeven, top.bid), -pos.qty)]
        self.entries.sync(ctx, entries)
        self.exit.sync(ctx, exits)

    def describe(self) -> dict[str, Any]:
        out = self._base_describe()
        out.update(
            qty_lots=self.qty,
            exit_since_ns=self.exit_since_ns,
            taker_mode=self.taker_mode,
            round_trips=self.round_trips,
            maker_exits=self.maker_exits,
            taker_exits=self.taker_exits,
            entries=self.entries.describe() if self.entries else {},
            exit=self.exit.describe() if self.exit else {},
        )
        return out
