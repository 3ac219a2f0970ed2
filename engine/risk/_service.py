"""The risk service: ``can_place`` before every order, ``should_panic_stop`` after every change.

Theory of operation
-------------------
One ``RiskService`` lives inside a strategy (built from the strategy config's ``risk:``
section) and sees the world through the hooks the strategy forwards to it. It is pure like the
reducer: it reads the context, keeps small integer state, and acts only through the context.

Two questions, as in seed 003's RiskControlService:

* ``can_place(ctx, inst, side, price, qty, ...) -> Verdict`` — allow, or deny with a code and
  a one-line reason. Checked in this order: an order that *reduces* the position (opposite
  side, and together with the open orders on its side no larger than the position) is always
  allowed; otherwise it is denied while a trip is active, then by the order-rate and cancel
  budgets (rolling 10 s and 1 min), max open orders, max order notional, the price band
  around the mark (or the mid when no mark is known), and the worst-case position (position
  plus every open order on the same side plus this one) in lots, in notional, and summed over
  the account. A limit is reached *at* its value: exactly the limit is allowed, one more is
  denied.
* ``should_panic_stop(ctx) -> bool`` — evaluates the trips and says whether one is active:
  daily loss (realized + unrealized - fees + funding since the first look of the UTC day),
  drawdown from the equity peak, |price change| over a window, stale market data, a stream
  down. A loss or drawdown trips *at* the limit (loss >= max_daily_loss). A trip journals
  itself, cancels every open order, optionally flattens with a reduce-only market order,
  and pauses with a stated resume condition:

  ============  ========================================  ==================================
  trip          actions                                   resumes
  ============  ========================================  ==================================
  daily_loss    cancel all, flatten (flatten_on_loss)     next UTC day, or operator reset
  drawdown      cancel all, flatten (flatten_on_loss)     operator ``risk_reset`` only
  price_change  cancel all                                after pause_s, once the change over
                                                          the window is back within the limit
  stale_data    cancel all                                market data flows again
  disconnected  cancel all                                every stream that went down is up
  ============  ========================================  ==================================

  While a trip is active only orders that reduce the position pass ``can_place``.

Every denial, trip and reset becomes a ``RecordDecision`` intent with category ``"risk"``
(action ``deny`` / ``trip`` / ``reset``, the code, the numbers), so replay and SQL show why.
A denial that repeats (same symbol, side and code) is journaled at most every
``deny_log_interval_ms``; the next record says how many were folded into it.

Wiring it into a strategy (any strategy; the quoters do exactly this)::

    self.risk = RiskService(config.risk)
    def on_instrument(self, ctx, instrument): self.risk.on_instrument(ctx, instrument)
    def on_top(self, ctx, inst):   self.risk.on_market(ctx, inst); ...
    def on_book(self, ctx, inst):  self.risk.on_market(ctx, inst); ...
    def on_trade(self, ctx, ev):   self.risk.on_market(ctx, ev.inst); ...
    def on_mark(self, ctx, ev):    self.risk.on_mark(ctx, ev); ...
    def on_fill(self, ctx, o, ev): self.risk.on_fill(ctx, o, ev); ...
    def on_timer(self, ctx, key):  if self.risk.on_timer(ctx, key): return ...
    def on_connection(self, ctx, ev): self.risk.on_connection(ctx, ev)
    def on_operator(self, ctx, ev):   if self.risk.on_operator(ctx, ev): return ...

and place / cancel through ``self.risk.place(ctx, ...)`` (returns the order, or None when
denied) and ``self.risk.cancel(ctx, order)`` so the rate budgets see every request. Check
``self.risk.halted`` before quoting: while it is true, quote nothing that adds exposure.
The service schedules its own timer (key ``"risk"`` by default) for the time-based checks.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

from engine._context import Context
from engine._events import (
    ConnectionChanged,
    ConnectionState,
    MarkPriceUpdated,
    OperatorCommanded,
    OrderFilled,
    Side,
    TimeInForce,
)
from engine._instrument import Instrument
from engine._intents import AlertLevel, OrderType
from engine._state import Order
from engine._units import PRICE_E8_SCALE, QUOTE_SCALE, RATE_SCALE, round_half_away

from ._config import RiskConfig

__all__ = ["ALLOW", "FLATTEN_TAG", "RiskService", "Trip", "Verdict"]

# Enum members looked up on hot paths, bound once: on CPython 3.11 `Enum.MEMBER` costs
# ~100 ns per lookup (a module constant ~10 ns)
_ORDERTYPE_MARKET = OrderType.MARKET
_SIDE_BUY = Side.BUY
_SIDE_SELL = Side.SELL
_TIMEINFORCE_GTC = TimeInForce.GTC


_S = 1_000_000_000
_DAY_NS = 86_400 * _S
FLATTEN_TAG = "risk:flatten"


def _minor(amount: Decimal) -> int:
    return int(amount * QUOTE_SCALE)


class Verdict:
    """The answer of ``can_place``: ``allowed``, or a machine ``code`` and a one-line ``reason``."""

    __slots__ = ("allowed", "code", "reason")

    def __init__(self, allowed: bool, code: str = "", reason: str = "") -> None:
        self.allowed = allowed
        self.code = code
        self.reason = reason

    def __bool__(self) -> bool:
        return self.allowed

    def __repr__(self) -> str:
        return "ALLOW" if self.allowed else f"Deny({self.code}: {self.reason})"


ALLOW = Verdict(True)


class Trip:
    """An active trip: what tripped, when, and what ends it."""

    __slots__ = ("code", "detail", "resume", "since_ns", "until_ns")

    def __init__(self, code: str, since_ns: int, detail: str, resume: str, until_ns: int) -> None:
        self.code = code
        self.since_ns = since_ns
        self.detail = detail
        self.resume = resume
        self.until_ns = until_ns  # earliest resume time (price_change), 0 = none

    def describe(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "since_ns": self.since_ns,
            "detail": self.detail,
            "resume": self.resume,
        }


class _Inst:
    __slots__ = ("ins", "last_data_ns", "max_lots", "samples")

    def __init__(self, ins: Instrument, max_lots: int) -> None:
        self.ins = ins
        self.max_lots = max_lots
        self.last_data_ns = 0
        self.samples: deque[tuple[int, int]] = deque()  # (ns, ref price ticks) per check


class RiskService:
    def __init__(self, config: RiskConfig, timer_key: str = "risk") -> None:
        c = self.config = config
        self.timer_key = timer_key
        self.insts: dict[int, _Inst] = {}
        self.trips: dict[str, Trip] = {}
        self.down: dict[str, bool] = {}  # streams reported down (insertion order)
        self.day = -1
        self.day_start = 0  # equity, minor units, at the first look of the UTC day
        self.peak = 0
        self.equity_now = 0
        self.timer_on = False
        self.placed: deque[int] = deque()  # ns of new orders in the last minute
        self.cancels: deque[int] = deque()
        self.denials: dict[str, int] = {}  # code -> count
        self.trip_count = 0
        self.resets = 0
        self._deny_log: dict[tuple[int, int, str], list[int]] = {}  # -> [last ns, folded]
        self._lim_order = _minor(c.max_order_notional)
        self._lim_pos_notional = _minor(c.max_position_notional)
        self._lim_account = _minor(c.max_account_notional)
        self._lim_daily = _minor(c.max_daily_loss)
        self._lim_dd = _minor(c.max_drawdown)
        self._band = int(c.price_band * RATE_SCALE)
        self._move = int(c.max_price_change * RATE_SCALE)
        self._stale_ns = int(c.stale_data_s * _S)
        self._check_ns = c.check_interval_ms * 1_000_000
        self._window_ns = c.price_window_s * _S

    # -- wiring ------------------------------------------------------------------------

    def on_instrument(self, ctx: Context, instrument: Instrument) -> None:
        max_lots = 0
        if self.config.max_position:
            max_lots = instrument.qty_scale.to_units_floor(str(self.config.max_position))
            if max_lots <= 0:
                max_lots = -1  # below one lot: nothing may add exposure
        self.insts[instrument.inst] = _Inst(instrument, max_lots)
        c = self.config
        wants_timer = c.stale_data_s or c.max_price_change or c.max_daily_loss or c.max_drawdown
        if wants_timer and not self.timer_on:
            self.timer_on = True
            ctx.schedule(ctx.now_ns + self._check_ns, self.timer_key)
        self.should_panic_stop(ctx)  # the day's and the peak's starting equity

    def on_market(self, ctx: Context, inst: int) -> None:
        """Market data for ``inst`` arrived (book, bookTicker or trade): it is not stale."""
        r = self.insts.get(inst)
        if r is not None:
            r.last_data_ns = ctx.now_ns

    def on_mark(self, ctx: Context, ev: MarkPriceUpdated) -> None:
        if ev.inst in self.insts:
            self.on_market(ctx, ev.inst)
            self.should_panic_stop(ctx)

    def on_fill(self, ctx: Context, order: Order | None, ev: OrderFilled) -> None:
        self.should_panic_stop(ctx)

    def on_timer(self, ctx: Context, key: str) -> bool:
        """True when the timer was the risk service's own (the strategy should ignore it)."""
        if key != self.timer_key:
            return False
        ctx.schedule(ctx.now_ns + self._check_ns, self.timer_key)
        self._check_time(ctx)
        self.should_panic_stop(ctx)
        if self.config.flatten_on_loss and ("daily_loss" in self.trips or "drawdown" in self.trips):
            self._flatten(ctx)  # a resting order may have filled after the trip
        return True

    def on_connection(self, ctx: Context, ev: ConnectionChanged) -> None:
        if not self.config.halt_on_disconnect:
            return
        if ev.state is ConnectionState.DOWN:
            self.down[ev.stream] = True
            if "disconnected" not in self.trips:
                self._trip(
                    ctx,
                    "disconnected",
                    f"stream {ev.stream} down: {ev.reason}",
                    "every stream that went down is up again",
                    flatten=False,
                )
        else:
            self.down.pop(ev.stream, None)
            if not self.down and "disconnected" in self.trips:
                self._reset(ctx, "disconnected", f"stream {ev.stream} up again")

    def on_operator(self, ctx: Context, ev: OperatorCommanded) -> bool:
        """``risk_reset`` (optionally ``code=<trip>``) clears trips; True if it was for us."""
        if ev.command != "risk_reset":
            return False
        only = ev.args.get("code", "")
        eq = self.equity(ctx)
        for code in list(self.trips):
            if only and code != only:
                continue
            if code == "daily_loss":
                self.day_start = eq  # a reset gives the day a fresh allowance
            if code == "drawdown":
                self.peak = eq
            self._reset(ctx, code, "operator risk_reset")
        return True

    # -- asking --------------------------------------------------------------------------

    @property
    def halted(self) -> bool:
        """A trip is active: add no exposure."""
        return bool(self.trips)

    def can_place(
        self,
        ctx: Context,
        inst: int,
        side: Side,
        price: int,
        qty: int,
        *,
        market: bool = False,
        reduce_only: bool = False,
    ) -> Verdict:
        """Allow, or deny (journaled) an order of ``qty`` lots at ``price`` ticks.

        A ``reduce_only`` order on the side opposite the position is always allowed: the
        exchange itself refuses to let it add exposure."""
        r = self.insts.get(inst)
        if r is None:
            return self._deny(
                ctx, inst, side, "unknown_instrument", f"instrument {inst} not known to risk"
            )
        st = ctx.state
        pos = st.position(inst).qty
        same = 0
        open_n = 0
        for o in st.orders_for(inst):
            open_n += 1
            if o.side is side:
                same += o.remaining
        if (side is _SIDE_SELL and pos > 0) or (side is _SIDE_BUY and pos < 0):
            if reduce_only or same + qty <= abs(pos):
                return ALLOW  # reduces the position even if every open order fills
        if self.trips:
            codes = ",".join(self.trips)
            return self._deny(
                ctx,
                inst,
                side,
                "halted",
                f"trip active ({codes}): only orders that reduce the position",
            )
        c = self.config
        now = ctx.now_ns
        self._prune(now)
        budgets = (
            ("order_rate", "orders", self.placed, c.max_orders_per_minute, c.max_orders_per_10s),
            (
                "cancel_rate",
                "cancels",
                self.cancels,
                c.max_cancels_per_minute,
                c.max_cancels_per_10s,
            ),
        )
        for code, what, times, per_minute, per_10s in budgets:
            if per_minute and len(times) >= per_minute:
                reason = f"{len(times)} {what} in the last minute, budget {per_minute}"
                return self._deny(ctx, inst, side, code, reason)
            if per_10s:
                n10 = self._count_since(times, now - 10 * _S)
                if n10 >= per_10s:
                    reason = f"{n10} {what} in the last 10 s, budget {per_10s}"
                    return self._deny(ctx, inst, side, code, reason)
        if c.max_open_orders and open_n >= c.max_open_orders:
            return self._deny(
                ctx,
                inst,
                side,
                "max_open_orders",
                f"{open_n} open orders, limit {c.max_open_orders}",
            )
        ref = self.ref_price(ctx, inst)
        px = ref if market else price
        ins = r.ins
        if self._lim_order and px > 0:
            notional = ins.notional(px, qty)
            if notional > self._lim_order:
                return self._deny(
                    ctx,
                    inst,
                    side,
                    "max_order_notional",
                    f"order notional {_fmt(notional)} above {_fmt(self._lim_order)}",
                )
        if self._band and not market and ref > 0:
            if abs(price - ref) * RATE_SCALE > self._band * ref:
                return self._deny(
                    ctx,
                    inst,
                    side,
                    "price_band",
                    f"price {ins.price_text(price)} more than {c.price_band} from {ins.price_text(ref)}",
                )
        worst = abs(pos + int(side) * (same + qty))
        if r.max_lots and worst > abs(pos) and worst > r.max_lots:
            lim = max(r.max_lots, 0)
            return self._deny(
                ctx,
                inst,
                side,
                "max_position",
                f"worst-case position {ins.qty_text(worst)} above {ins.qty_text(lim)}",
            )
        if (self._lim_pos_notional or self._lim_account) and ref > 0 and worst > abs(pos):
            worst_notional = ins.notional(ref, worst)
            if self._lim_pos_notional and worst_notional > self._lim_pos_notional:
                return self._deny(
                    ctx,
                    inst,
                    side,
                    "max_position_notional",
                    f"worst-case position notional {_fmt(worst_notional)} above {_fmt(self._lim_pos_notional)}",
                )
            if self._lim_account:
                total = worst_notional + self._others_notional(ctx, inst)
                if total > self._lim_account:
                    return self._deny(
                        ctx,
                        inst,
                        side,
                        "max_account_notional",
                        f"account notional {_fmt(total)} above {_fmt(self._lim_account)}",
                    )
        return ALLOW

    def should_panic_stop(self, ctx: Context) -> bool:
        """Evaluate the loss limits now (trips them if reached); True while any trip is active."""
        eq = self.equity(ctx)
        self.equity_now = eq
        day = ctx.now_ns // _DAY_NS
        if day != self.day:
            first = self.day < 0
            self.day = day
            self.day_start = eq
            if first:
                self.peak = eq
            if "daily_loss" in self.trips:
                self._reset(ctx, "daily_loss", "new UTC day")
        if eq > self.peak:
            self.peak = eq
        loss = self.day_start - eq
        if self._lim_daily and loss >= self._lim_daily and "daily_loss" not in self.trips:
            self._trip(
                ctx,
                "daily_loss",
                f"loss since the start of the UTC day {_fmt(loss)} >= {_fmt(self._lim_daily)}",
                "next UTC day or operator risk_reset",
                flatten=self.config.flatten_on_loss,
            )
        dd = self.peak - eq
        if self._lim_dd and dd >= self._lim_dd and "drawdown" not in self.trips:
            self._trip(
                ctx,
                "drawdown",
                f"drawdown from the equity peak {_fmt(dd)} >= {_fmt(self._lim_dd)}",
                "operator risk_reset",
                flatten=self.config.flatten_on_loss,
            )
        return bool(self.trips)

    # -- acting through the service ------------------------------------------------------

    def place(
        self,
        ctx: Context,
        inst: int,
        side: Side,
        price: int,
        qty: int,
        *,
        tif: TimeInForce = TimeInForce.GTX,
        order_type: OrderType = OrderType.LIMIT,
        reduce_only: bool = False,
        tag: str = "",
    ) -> Order | None:
        """``ctx.place`` if ``can_place`` allows it; None (and a journaled denial) if not."""
        market = order_type is _ORDERTYPE_MARKET
        if not self.can_place(ctx, inst, side, price, qty, market=market, reduce_only=reduce_only):
            return None
        self.placed.append(ctx.now_ns)
        return ctx.place(
            inst, side, price, qty, tif=tif, order_type=order_type, reduce_only=reduce_only, tag=tag
        )

    def cancel(self, ctx: Context, order: Order) -> None:
        if order.cancel_pending or not order.is_open:
            return
        self.cancels.append(ctx.now_ns)
        ctx.cancel(order)

    # -- money and prices ----------------------------------------------------------------

    def ref_price(self, ctx: Context, inst: int) -> int:
        """Mark price in ticks when known, else the mid (floored); 0 when neither is."""
        st = ctx.state
        mark = st.marks.get(inst)
        if mark is not None and mark.mark_e8 > 0:
            ps = st.instruments[inst].price_scale
            return round_half_away(mark.mark_e8 * 10**ps.decimals, ps.unit * PRICE_E8_SCALE)
        top = st.tops.get(inst)
        if top is not None and top.valid:
            return (top.bid + top.ask) // 2
        return 0

    def equity(self, ctx: Context) -> int:
        """Realized + unrealized (at ``ref_price``) - fees + funding, minor units, all symbols."""
        st = ctx.state
        total = 0
        for inst, pos in st.positions.items():
            ins = st.instruments.get(inst)
            if ins is None:
                continue
            pnl = pos.realized
            if pos.qty:
                px = self.ref_price(ctx, inst)
                if px:
                    pnl += pos.unrealized(px)
            total += pnl * ins.minor_per_ticklot - pos.fees + pos.funding
        return total

    # -- internals -----------------------------------------------------------------------

    def _others_notional(self, ctx: Context, inst: int) -> int:
        st = ctx.state
        total = 0
        for other, pos in st.positions.items():
            if other == inst or not pos.qty:
                continue
            ins = st.instruments.get(other)
            px = self.ref_price(ctx, other)
            if ins is not None and px:
                total += ins.notional(px, abs(pos.qty))
        return total

    def _prune(self, now: int) -> None:
        edge = now - 60 * _S
        for dq in (self.placed, self.cancels):
            while dq and dq[0] <= edge:
                dq.popleft()

    @staticmethod
    def _count_since(dq: deque[int], edge: int) -> int:
        n = 0
        for t in reversed(dq):
            if t <= edge:
                break
            n += 1
        return n

    def _deny(self, ctx: Context, inst: int, side: Side, code: str, reason: str) -> Verdict:
        self.denials[code] = self.denials.get(code, 0) + 1
        key = (inst, int(side), code)
        now = ctx.now_ns
        log = self._deny_log.get(key)
        interval = self.config.deny_log_interval_ms * 1_000_000
        if log is not None and now - log[0] < interval:
            log[1] += 1
            return Verdict(False, code, reason)
        folded = log[1] if log is not None else 0
        self._deny_log[key] = [now, 0]
        more = f" (+{folded} like it since the last record)" if folded else ""
        ctx.decide("risk", "deny", code, f"{side.name}: {reason}{more}", inst)
        return Verdict(False, code, reason)

    def _trip(
        self, ctx: Context, code: str, detail: str, resume: str, *, flatten: bool, until_ns: int = 0
    ) -> None:
        self.trips[code] = Trip(code, ctx.now_ns, detail, resume, until_ns)
        self.trip_count += 1
        actions = "cancel all" + (", flatten" if flatten else "")
        ctx.decide("risk", "trip", code, f"{detail}; {actions}; resumes: {resume}")
        ctx.alert(AlertLevel.CRITICAL, f"risk_{code}", f"{detail}; {actions}; resumes: {resume}")
        st = ctx.state
        for inst in self.insts:
            if any(not o.cancel_pending for o in st.orders_for(inst)):
                ctx.cancel_all(inst, f"risk trip: {code}")
        if flatten:
            self._flatten(ctx)

    def _reset(self, ctx: Context, code: str, why: str) -> None:
        trip = self.trips.pop(code, None)
        if trip is None:
            return
        self.resets += 1
        ctx.decide("risk", "reset", code, f"{why} (tripped at {trip.since_ns}: {trip.detail})")

    def _flatten(self, ctx: Context) -> None:
        st = ctx.state
        for inst, r in self.insts.items():
            pos = st.position(inst).qty
            if not pos:
                continue
            if any(o.tag == FLATTEN_TAG for o in st.orders_for(inst)):
                continue
            qty = abs(pos)
            spec = r.ins.spec
            cap = spec.market_max_qty or spec.max_qty
            if cap:
                qty = min(qty, cap)
            side = _SIDE_SELL if pos > 0 else _SIDE_BUY
            self.place(
                ctx,
                inst,
                side,
                0,
                qty,
                tif=_TIMEINFORCE_GTC,
                order_type=_ORDERTYPE_MARKET,
                reduce_only=True,
                tag=FLATTEN_TAG,
            )

    def _check_time(self, ctx: Context) -> None:
        """Stale data and price change, on the risk timer."""
        now = ctx.now_ns
        if self._stale_ns:
            stale = [
                r.ins.symbol
                for r in self.insts.values()
                if r.last_data_ns and now - r.last_data_ns >= self._stale_ns
            ]
            if stale and "stale_data" not in self.trips:
                self._trip(
                    ctx,
                    "stale_data",
                    f"no market data for {self.config.stale_data_s} s on {','.join(stale)}",
                    "market data flows again",
                    flatten=False,
                )
            elif not stale and "stale_data" in self.trips:
                self._reset(ctx, "stale_data", "market data flows again")
        if self._move:
            worst = 0
            where = ""
            for inst, r in self.insts.items():
                px = self.ref_price(ctx, inst)
                if not px:
                    continue
                samples = r.samples
                edge = now - self._window_ns
                while samples and samples[0][0] < edge:
                    samples.popleft()
                samples.append((now, px))
                lo = min(p for _, p in samples)
                hi = max(p for _, p in samples)
                # relative to where the move started: up from the window's low, down from its high
                move = max((px - lo) * RATE_SCALE // lo, (hi - px) * RATE_SCALE // hi)
                if move > worst:
                    worst = move
                    where = f"{r.ins.symbol} {r.ins.price_text(lo)}..{r.ins.price_text(hi)} now {r.ins.price_text(px)}"
            trip = self.trips.get("price_change")
            if trip is None and worst >= self._move:
                pct = Decimal(worst) / RATE_SCALE
                self._trip(
                    ctx,
                    "price_change",
                    f"price moved {pct:.4%} within {self.config.price_window_s} s ({where})",
                    f"after {self.config.pause_s} s once the move is back within {self.config.max_price_change}",
                    flatten=False,
                    until_ns=now + self.config.pause_s * _S,
                )
            elif trip is not None and now >= trip.until_ns and worst < self._move:
                self._reset(ctx, "price_change", "pause over and the price is calm again")

    def describe(self) -> dict[str, Any]:
        return {
            "halted": self.halted,
            "trips": [t.describe() for t in self.trips.values()],
            "equity_minor": self.equity_now,
            "day_start_minor": self.day_start,
            "peak_minor": self.peak,
            "denials": dict(self.denials),
            "trip_count": self.trip_count,
            "resets": self.resets,
            "orders_last_minute": len(self.placed),
        }


def _fmt(minor: int) -> str:
    return str((Decimal(minor) / QUOTE_SCALE).normalize())
