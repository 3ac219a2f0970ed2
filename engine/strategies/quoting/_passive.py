"""Passive two-sided quoting around a TWAP reference (seed 002).

The reference price is the time-weighted average of the mid, sampled every ``sample_ms`` by
a timer (so it is journaled time, not wall-clock time) over ``twap_window_s``. Each side
carries ``target_orders_per_side`` orders whose total spread around the reference runs
evenly from ``min_spread`` to ``max_spread`` (one order per side sits at the middle of the
range), each worth at least ``min_order_value``. Quotes are recomputed only when the
reference has drifted more than ``drift_threshold`` from the one they were built on, when
the market crosses a quote's price, or when one of them was filled or cancelled; between
those moments nothing is sent, which keeps both the request rate and the passive fill rate
low. A quote never crosses the touch (it is clamped to the best bid / ask and sent
post-only).
"""

from __future__ import annotations

import math
from collections import deque
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from engine._context import Context
from engine._events import OrderFilled, Side
from engine._instrument import Instrument
from engine._state import Order
from engine.risk import RiskConfig

from ._common import Ladder, QuotingStrategy, Target, lots_for_value

__all__ = ["PassiveQuoter", "PassiveQuoterConfig"]

_MS = 1_000_000


class PassiveQuoterConfig(
    msgspec.Struct, tag="passive", tag_field="kind", forbid_unknown_fields=True, kw_only=True
):
    #: the symbol to quote, e.g. BTCUSDC
    symbol: str
    #: smallest total spread (ask - bid) / reference, e.g. 0.002 = 0.2%
    min_spread: Decimal = Decimal("0.002")
    #: largest total spread; levels are spread evenly from min_spread to max_spread
    max_spread: Decimal = Decimal("0.004")
    #: orders per side
    target_orders_per_side: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1
    #: each order is worth at least this much quote asset (and the exchange's min notional)
    min_order_value: Decimal = Decimal(100)
    #: requote when the reference moved more than this fraction from the quoted one
    drift_threshold: Decimal = Decimal("0.0005")
    #: TWAP window and sampling period
    twap_window_s: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 60
    sample_ms: Annotated[int, msgspec.Meta(ge=10, le=60_000)] = 1000
    #: post-only (GTX) quotes
    post_only: bool = True
    #: the shared risk limits (engine/risk)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)

    def __post_init__(self) -> None:
        if not 0 < self.min_spread <= self.max_spread < 1:
            raise ValueError("need 0 < min_spread <= max_spread < 1 (fractions: 0.002 = 0.2%)")
        if self.min_order_value <= 0:
            raise ValueError("min_order_value must be positive")
        if not 0 < self.drift_threshold < 1:
            raise ValueError("drift_threshold is a fraction (0.0005 = 0.05%), in (0, 1)")


class PassiveQuoter(QuotingStrategy):
    kind = "passive"

    def __init__(self, config: PassiveQuoterConfig) -> None:
        super().__init__(config.symbol, config.risk)
        self.config = config
        self.ladder: Ladder | None = None
        self.samples: deque[int] = deque()  # 2 x mid, ticks
        self.sample_sum = 0
        self.window = max(1, config.twap_window_s * 1000 // config.sample_ms)
        self.quoted_ref = 0.0  # reference (ticks) the current targets were built on
        self.targets: list[Target] = []
        self.recomputes = 0
        n = config.target_orders_per_side
        lo, hi = config.min_spread, config.max_spread
        if n == 1:
            self.spreads = [float((lo + hi) / 2)]
        else:
            self.spreads = [float(lo + (hi - lo) * i / (n - 1)) for i in range(n)]

    def _setup(self, ctx: Context, ins: Instrument) -> None:
        self.ladder = Ladder(self.risk, ins.inst, post_only=self.config.post_only, requote_ticks=1)
        ctx.schedule(ctx.now_ns + self.config.sample_ms * _MS, "passive:sample")

    def twap(self) -> float:
        """The reference price in ticks (0.0 before the first sample)."""
        if not self.samples:
            return 0.0
        return self.sample_sum / (2.0 * len(self.samples))

    def _on_timer(self, ctx: Context, key: str) -> None:
        if key != "passive:sample":
            return
        ctx.schedule(ctx.now_ns + self.config.sample_ms * _MS, "passive:sample")
        top = ctx.top(self.inst)
        if not top.valid:
            return
        m2 = top.mid2()
        self.samples.append(m2)
        self.sample_sum += m2
        if len(self.samples) > self.window:
            self.sample_sum -= self.samples.popleft()
        ref = self.twap()
        q = self.quoted_ref
        if not q or abs(ref - q) > float(self.config.drift_threshold) * q:
            self._recompute(ctx)
        else:
            self._sync(ctx)

    def _on_top(self, ctx: Context) -> None:
        if not self.targets:
            return
        top = ctx.top(self.inst)
        # the market reached a quote's price: the reference is behind it, rebuild now
        for _, side, price, _ in self.targets:
            if (side is Side.BUY and top.ask <= price) or (side is Side.SELL and top.bid >= price):
                self._recompute(ctx)
                return

    def _on_fill(self, ctx: Context, order: Order | None, ev: OrderFilled) -> None:
        self._recompute(ctx)

    def _on_closed(self, ctx: Context, order: Order) -> None:
        self._sync(ctx)

    def _on_risk(self, ctx: Context) -> None:
        self._sync(ctx)

    def _recompute(self, ctx: Context) -> None:
        ref = self.twap()
        top = ctx.top(self.inst)
        ins = self.ins
        if not ref or not top.valid or ins is None:
            return
        self.quoted_ref = ref
        self.recomputes += 1
        targets: list[Target] = []
        for side in (Side.BUY, Side.SELL):
            for i, spread in enumerate(self.spreads):
                half = ref * spread / 2.0
                if side is Side.BUY:
                    price = min(math.floor(ref - half), top.bid)
                else:
                    price = max(math.ceil(ref + half), top.ask)
                qty = lots_for_value(ins, self.config.min_order_value, price)
                targets.append((f"{'b' if side is Side.BUY else 'a'}{i}", side, price, qty))
        self.targets = targets
        self._sync(ctx)

    def _sync(self, ctx: Context) -> None:
        if self.ladder is None:
            return
        self.ladder.sync(ctx, [] if self.risk.halted else self.targets)

    def describe(self) -> dict[str, Any]:
        out = self._base_describe()
        out.update(
            twap_ticks=self.twap(),
            quoted_ref_ticks=self.quoted_ref,
            recomputes=self.recomputes,
            targets=[[s, side.name, p, q] for s, side, p, q in self.targets],
            orders=self.ladder.describe() if self.ladder else {},
        )
        return out
