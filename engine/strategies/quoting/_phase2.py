"""Phase 2: dynamic spread / dynamic grid (seed 003 §2.2) priced by GLFT or Avellaneda–Stoikov.

Every ``step_ms`` a timer (journaled time) closes one *step*: it records the deepest trade
arrival depth seen during the step, measured from the mid at the previous step (buys above,
sells below), and the mid change. Every ``refit_s`` the estimators refit A and k of
λ(δ) = A·e^(−kδ) and σ over the last ``window_s`` (see ``_models.py``); until ``warmup_s`` of
steps exist the configured ``initial_*`` values are used.

Quotes, recomputed at every step and after every fill or closed order:

* **fair price**: the mid, the micro-price (size-weighted touch), or the mid shifted by
  ``imbalance_ticks`` × the book imbalance over ``book_levels`` levels (in [-1, 1]);
* **GLFT**: half spread = c1 + σ·c2/2, skew = σ·c2 (×``spread_mult`` / ×``skew_mult``,
  hftbacktest's adj1/adj2); bid = fair − half − skew·q, ask = fair + half − skew·q, with
  q the position in order sizes. **A-S**: reservation r = mid − q·γ·σ²·τ, spread =
  γ·σ²·τ + (2/γ)·ln(1 + γ/k), τ = ``horizon_s``;
* **depth**: when the top ``book_levels`` hold less than their running average, the half
  spread widens by ``depth_widen`` × the shortfall fraction;
* the half spread is kept within [``min_half_spread_ticks``, ``max_half_spread_ticks``];
* **dynamic grid**: ``levels`` orders per side, a grid interval of max(round(half spread),
  1) ticks apart (reset at each refit, so it does not move with every tick), the first
  aligned on that grid (so small changes of the target do not move every level), never
  crossing the touch;
* **inventory**: a side gets only as many levels as fit within ``[-inv_max, +inv_max]``
  counting them all filled; at the limit that side is not quoted at all.

An order moves only when its target tick changes (cheap on rate limits).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from engine._context import Context
from engine._events import OrderFilled, Side, TradePrinted
from engine._instrument import Instrument
from engine._state import Order
from engine.risk import RiskConfig

from ._common import Ladder, QuotingStrategy, Target
from ._models import (
    ArrivalEstimator,
    VolatilityEstimator,
    as_quotes,
    glft_coefficients,
    glft_quotes,
)

__all__ = ["Phase2Quoter", "Phase2QuoterConfig"]

_MS = 1_000_000


class Phase2QuoterConfig(
    msgspec.Struct, tag="phase2", tag_field="kind", forbid_unknown_fields=True, kw_only=True
):
    #: the symbol to quote
    symbol: str
    #: size of each quote in the base asset (Δ, the unit of inventory q)
    order_qty: Decimal
    #: largest |position| in the base asset; quotes that could pass it are not sent
    inv_max: Decimal
    #: orders per side
    levels: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1
    #: glft | avellaneda_stoikov
    pricing: Literal["glft", "avellaneda_stoikov"] = "glft"
    #: risk aversion γ (per tick; GLFT also uses it as ξ)
    gamma: Decimal = Decimal("0.05")
    #: A-S horizon τ in seconds (a perpetual has no end: a rolling horizon)
    horizon_s: Decimal = Decimal(10)
    #: mid | microprice | imbalance
    fair_price: Literal["mid", "microprice", "imbalance"] = "mid"
    #: ticks the fair price moves at book imbalance +1 (fair_price: imbalance)
    imbalance_ticks: Decimal = Decimal(0)
    #: book levels for imbalance and depth
    book_levels: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    #: widen the half spread by this fraction x the depth shortfall (0 = off)
    depth_widen: Decimal = Decimal(0)
    #: hftbacktest's adj1 (x half spread) and adj2 (x skew)
    spread_mult: Decimal = Decimal(1)
    skew_mult: Decimal = Decimal(1)
    min_half_spread_ticks: Decimal = Decimal(1)
    #: 0 = no cap
    max_half_spread_ticks: Decimal = Decimal(0)
    #: estimator step, window, refit period and warm-up
    step_ms: Annotated[int, msgspec.Meta(ge=10, le=60_000)] = 100
    window_s: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 600
    refit_s: Annotated[int, msgspec.Meta(ge=1, le=3_600)] = 5
    warmup_s: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 30
    #: arrival depths fitted up to this many ticks from the mid
    fit_depth_ticks: Annotated[int, msgspec.Meta(ge=2, le=100_000)] = 70
    #: used until the first fit: A (arrivals/s at the mid), k (1/tick), σ (ticks/√s)
    initial_a: Decimal = Decimal(1)
    initial_k: Decimal = Decimal("0.5")
    initial_sigma: Decimal = Decimal(10)
    #: move an order only when its target moved at least this many ticks
    requote_ticks: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1
    #: post-only (GTX) quotes
    post_only: bool = True
    #: the shared risk limits (engine/risk)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)

    def __post_init__(self) -> None:
        if self.order_qty <= 0:
            raise ValueError("order_qty must be positive")
        for name in (
            "gamma",
            "horizon_s",
            "spread_mult",
            "initial_a",
            "initial_k",
            "initial_sigma",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("depth_widen", "skew_mult", "min_half_spread_ticks", "max_half_spread_ticks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.inv_max < self.order_qty:
            raise ValueError("inv_max must be at least one order_qty")
        if self.max_half_spread_ticks and self.max_half_spread_ticks < self.min_half_spread_ticks:
            raise ValueError("max_half_spread_ticks must be 0 (no cap) or >= min_half_spread_ticks")
        if self.warmup_s > self.window_s:
            raise ValueError("warmup_s must not exceed window_s")


class Phase2Quoter(QuotingStrategy):
    kind = "phase2"

    def __init__(self, config: Phase2QuoterConfig) -> None:
        super().__init__(config.symbol, config.risk)
        c = self.config = config
        self.qty = 0
        self.inv_max = 0
        self.ladder: Ladder | None = None
        step_s = c.step_ms / 1000.0
        window = max(2, c.window_s * 1000 // c.step_ms)
        self.arrivals = ArrivalEstimator(step_s, window, float(c.fit_depth_ticks))
        self.vol = VolatilityEstimator(step_s, window)
        self.refit_steps = max(1, c.refit_s * 1000 // c.step_ms)
        self.warmup_steps = max(2, c.warmup_s * 1000 // c.step_ms)
        self.a = float(c.initial_a)
        self.k = float(c.initial_k)
        self.sigma = float(c.initial_sigma)
        self.gamma = float(c.gamma)
        self.fits = 0
        self.steps = 0
        self.prev_mid2 = 0
        self.buy_depth = -1.0  # deepest arrival this step, ticks (-1 = none)
        self.sell_depth = -1.0
        self.depth_avg = 0.0
        self.last: dict[str, float] = {}
        self.targets: list[Target] = []
        self.grid_step = 0  # ticks between levels
        self.fitted_since_grid = False

    def _setup(self, ctx: Context, ins: Instrument) -> None:
        c = self.config
        self.qty = ins.qty_scale.to_units(str(c.order_qty))
        self.inv_max = ins.qty_scale.to_units_floor(str(c.inv_max))
        self.ladder = Ladder(
            self.risk, ins.inst, post_only=c.post_only, requote_ticks=c.requote_ticks
        )
        self.ladder.limit = self.inv_max
        ctx.schedule(ctx.now_ns + c.step_ms * _MS, "p2:step")

    # -- estimation ----------------------------------------------------------------------

    def _on_trade(self, ctx: Context, ev: TradePrinted) -> None:
        m2 = self.prev_mid2
        if not m2:
            return
        if ev.taker_side is Side.BUY:
            d = (2 * ev.price - m2) / 2.0
            if d > self.buy_depth:
                self.buy_depth = d
        else:
            d = (m2 - 2 * ev.price) / 2.0
            if d > self.sell_depth:
                self.sell_depth = d

    def _on_timer(self, ctx: Context, key: str) -> None:
        if key != "p2:step":
            return
        ctx.schedule(ctx.now_ns + self.config.step_ms * _MS, "p2:step")
        top = ctx.top(self.inst)
        if not top.valid:
            return
        m2 = top.mid2()
        if self.prev_mid2:
            depth = max(self.buy_depth, self.sell_depth)
            self.arrivals.record(depth if depth >= 0 else None)
            self.vol.record((m2 - self.prev_mid2) / 2.0)
            self.steps += 1
            if self.steps % self.refit_steps == 0 and len(self.vol) >= self.warmup_steps:
                self._refit()
        self.prev_mid2 = m2
        self.buy_depth = self.sell_depth = -1.0
        self._quote(ctx)

    def _refit(self) -> None:
        if self.arrivals.fit():
            self.a, self.k = self.arrivals.a, self.arrivals.k
        if self.vol.fit() and self.vol.sigma > 0:
            self.sigma = self.vol.sigma
        self.fits += 1
        self.fitted_since_grid = True

    # -- quoting -------------------------------------------------------------------------

    def _on_fill(self, ctx: Context, order: Order | None, ev: OrderFilled) -> None:
        self._quote(ctx)

    def _on_closed(self, ctx: Context, order: Order) -> None:
        self._quote(ctx)

    def _on_risk(self, ctx: Context) -> None:
        self._quote(ctx)

    def _fair(self, ctx: Context) -> float:
        top = ctx.top(self.inst)
        c = self.config
        if c.fair_price == "microprice" and top.bid_qty + top.ask_qty > 0:
            return (top.bid * top.ask_qty + top.ask * top.bid_qty) / (top.bid_qty + top.ask_qty)
        mid = top.mid2() / 2.0
        if c.fair_price == "imbalance" and c.imbalance_ticks:
            return mid + float(c.imbalance_ticks) * ctx.book(self.inst).imbalance(c.book_levels)
        return mid

    def _depth_factor(self, ctx: Context) -> float:
        c = self.config
        if not c.depth_widen:
            return 1.0
        book = ctx.book(self.inst)
        if not book.synced:
            return 1.0
        bids, asks = book.depth(c.book_levels)
        depth = float(sum(q for _, q in bids) + sum(q for _, q in asks))
        avg = self.depth_avg = depth if not self.depth_avg else 0.99 * self.depth_avg + 0.01 * depth
        if avg <= 0 or depth >= avg:
            return 1.0
        return 1.0 + float(c.depth_widen) * (1.0 - depth / avg)

    def quote_prices(self, ctx: Context) -> tuple[float, float, float] | None:
        """(bid, ask, half spread) in ticks before rounding, or None if they cannot be priced."""
        c = self.config
        pos = ctx.position(self.inst).qty
        q = pos / self.qty
        fair = self._fair(ctx)
        try:
            if c.pricing == "glft":
                c1, c2 = glft_coefficients(self.a, self.k, self.gamma)
                bid, ask, half, skew = glft_quotes(
                    fair, q, self.sigma, c1, c2, 1.0, float(c.spread_mult), float(c.skew_mult)
                )
                self.last = {"c1": c1, "c2": c2, "half": half, "skew": skew}
            else:
                mid = ctx.top(self.inst).mid2() / 2.0
                bid, ask, r, spread = as_quotes(
                    mid, q, self.sigma, self.gamma, self.k, float(c.horizon_s)
                )
                shift = fair - mid
                bid, ask = bid + shift, ask + shift
                half = spread / 2.0
                self.last = {"reservation": r + shift, "spread": spread}
        except (ValueError, OverflowError):
            return None
        centre = (bid + ask) / 2.0
        lo = float(c.min_half_spread_ticks)
        hi = float(c.max_half_spread_ticks) or math.inf
        width = min(max(half * self._depth_factor(ctx), lo), hi)
        if not (math.isfinite(centre) and math.isfinite(width)):
            return None
        return centre - width, centre + width, width

    def _quote(self, ctx: Context) -> None:
        ladder = self.ladder
        if ladder is None:
            return
        top = ctx.top(self.inst)
        if self.risk.halted or not top.valid:
            ladder.sync(ctx, [])
            return
        prices = self.quote_prices(ctx)
        if prices is None:
            ladder.sync(ctx, [])
            return
        bid_px, ask_px, half = prices
        if not self.grid_step or self.fitted_since_grid:
            # the grid interval moves only when the model is refitted, so the levels stay put
            # between refits unless the price crosses a grid line
            self.grid_step = max(round(half), 1)
            self.fitted_since_grid = False
        step = self.grid_step
        bid0 = min(math.floor(bid_px / step) * step, top.bid)
        ask0 = max(math.ceil(ask_px / step) * step, top.ask)
        pos = ctx.position(self.inst).qty
        n_bids = min(self.config.levels, max(0, (self.inv_max - pos) // self.qty))
        n_asks = min(self.config.levels, max(0, (self.inv_max + pos) // self.qty))
        targets: list[Target] = []
        for i in range(n_bids):
            targets.append((f"b{i}", Side.BUY, bid0 - i * step, self.qty))
        for i in range(n_asks):
            targets.append((f"a{i}", Side.SELL, ask0 + i * step, self.qty))
        self.targets = targets
        ladder.sync(ctx, targets)

    def describe(self) -> dict[str, Any]:
        out = self._base_describe()
        out.update(
            pricing=self.config.pricing,
            a=self.a,
            k=self.k,
            sigma=self.sigma,
            fits=self.fits,
            grid_step=self.grid_step,
            steps=self.steps,
            last=dict(self.last),
            targets=[[s, side.name, p, q] for s, side, p, q in self.targets],
            orders=self.ladder.describe() if self.ladder else {},
        )
        return out
