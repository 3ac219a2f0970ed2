"""The grid: OpenSQT / QuantMesh's "infinite" grid as a pure strategy (ref/opensqt.md §1–§4).

One slot per lattice price, each with its own state machine (``_ledger.py``). On each
coalesced price update, ``_adjust`` places entries in the window below the price (above it in
short mode) and an exit one interval beyond every filled slot, exactly as OpenSQT's
AdjustOrders, with its bugs fixed (each fix is tested, ``tests/test_grid.py``):

* prices and sizes are integer ticks and lots from tickSize/stepSize; the lattice is anchored
  on the tick grid ("aligned" by default, so it is the same after a restart);
* a slot knows the client id of its one live order: late, duplicate or stale events for any
  other order never touch it (§7.4, §7.6);
* a holding too small to exit (a partial entry that was cancelled) is merged into the nearest
  filled slot further out, or flagged by an alert, instead of blocking its level (§7.5);
* reconciliation compares orders and position with the exchange's snapshot and repairs the
  ledger (adopt, settle, cancel), each repair a journaled decision (§7.1, §7.8);
* the margin lock stops entries only; exits keep working (§7.15); -4061 cancels this grid's
  orders and halts instead of exiting with orders live (§7.10);
* an exit never prices through the market: a filled slot far below the price exits at the
  first lattice level above it, as a maker (§7.12); only -5022 refusals count toward the
  post-only fallback, not routine cancels;
* the risk monitor fails closed and keeps exits working while it holds entries (§7.18);
* idle empty slots are dropped, so the ledger stays as small as the live orders and holdings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine._context import Context
from engine._events import (
    AccountSnapshotReceived,
    ConnectionChanged,
    KlineUpdated,
    MarkPriceUpdated,
    OperatorCommanded,
    OrderFilled,
    Side,
    TimeInForce,
    TradePrinted,
)
from engine._instrument import Instrument
from engine._intents import AlertLevel, SnapshotKind
from engine._order_state import OrderStatus
from engine._state import Order
from engine._units import QUOTE_SCALE, round_half_away
from engine.risk import RiskService
from engine.strategies._base import Strategy

from ._config import GridConfig
from ._ledger import Lock, Slot, SlotTrigger
from ._monitor import VolumeMonitor
from ._repairs import merge_dust, reconcile, repair_position, retry_unplaced

__all__ = ["Grid"]

# Enum members looked up on hot paths, bound once: on CPython 3.11 `Enum.MEMBER` costs
# ~100 ns per lookup (a module constant ~10 ns)
_ORDERSTATUS_CANCELED = OrderStatus.CANCELED
_ORDERSTATUS_EXPIRED = OrderStatus.EXPIRED
_ORDERSTATUS_FILLED = OrderStatus.FILLED
_ORDERSTATUS_NEW = OrderStatus.NEW
_ORDERSTATUS_REJECTED = OrderStatus.REJECTED
_SIDE_BUY = Side.BUY
_SIDE_SELL = Side.SELL
_SNAPSHOTKIND_ACCOUNT = SnapshotKind.ACCOUNT
_TIMEINFORCE_GTC = TimeInForce.GTC
_TIMEINFORCE_GTX = TimeInForce.GTX


T = SlotTrigger

#: after this many refusals in a row (other than -5022 / -2019) a slot is left alone until
#: the next reconciliation, with an alert (OpenSQT retries 6 times, then frees the slot)
MAX_SLOT_FAILURES = 6
#: the margin lock doubles on each -2019 in a row, up to this factor (OpenSQT loops at 1x)
MAX_MARGIN_BACKOFF = 16


class _Leg:
    """One direction of the grid: long (buy below, sell one interval up) or short."""

    __slots__ = ("d", "entry_side", "exit_side", "letter", "slots")

    def __init__(self, d: int) -> None:
        self.d = d
        self.entry_side = _SIDE_BUY if d > 0 else _SIDE_SELL
        self.exit_side = _SIDE_SELL if d > 0 else _SIDE_BUY
        self.letter = "L" if d > 0 else "S"
        self.slots: dict[int, Slot] = {}

    def slot(self, price: int) -> Slot:
        s = self.slots.get(price)
        if s is None:
            s = self.slots[price] = Slot(price)
        return s

    def holding(self) -> int:
        return sum(s.qty for s in self.slots.values())


class Grid(Strategy):
    kind = "grid"
    reconciles_orders = True  # slot-aware: adopts our orders into their slots

    def __init__(self, config: GridConfig) -> None:
        self.config = config
        self.legs = [_Leg(+1)] if config.mode == "long" else [_Leg(-1)]
        if config.mode == "neutral":
            self.legs = [_Leg(+1), _Leg(-1)]
        self.inst = -1
        self.ins: Instrument | None = None
        self.interval = 0  # I, ticks
        self.amount = 0  # Q, quote minor units
        self.min_exit = 0  # smallest exit notional, minor units
        self.anchor: int | None = None
        self.phase = "wait_instrument"  # -> wait_price -> wait_account -> running | halted
        self.halt_reason = ""
        self.session = -1  # session whose startup snapshot has been handled
        self.snapshot_requested_session = -1
        self.last_price = 0
        self.adjust_timer: int | None = None
        self.timers_started = False
        self.margin_lock_until = 0
        self.margin_strikes = 0
        self.exits_held = False  # after -2022, until the next reconciliation
        self.unplaced = 0  # signed lots a repair could not place in the ledger yet
        self.unplaced_alerted = False
        self.monitor = VolumeMonitor(config.risk_control) if config.risk_control.enabled else None
        #: the shared risk service: every grid order goes through its can_place; its trips
        #: (loss, drawdown, price change, stale data, disconnection) hold entries
        self.risk = RiskService(config.risk, timer_key="grid:risk")
        self.monitor_blocked = ""  # the reason entries are held by the monitor, "" if not
        # reconciliation memory: what the previous snapshot disagreed about
        self.prev_missing: set[str] = set()
        self.prev_unknown: set[str] = set()
        self.prev_diff = 0
        self.prev_snapshot_seq = -1
        self.foreign_seen: set[str] = set()
        self.stats = {
            "adjusts": 0,
            "entries": 0,
            "exits": 0,
            "round_trips": 0,
            "realized_ticklots": 0,
            "post_only_refusals": 0,
            "margin_locks": 0,
            "dust_merges": 0,
            "repairs": 0,
            "cleaner_cancels": 0,
            "risk_trips": 0,
        }

    # -- setup -------------------------------------------------------------------------------

    def on_instrument(self, ctx: Context, instrument: Instrument) -> None:
        if instrument.symbol != self.config.symbol or self.phase != "wait_instrument":
            return
        self.risk.on_instrument(ctx, instrument)
        problem = instrument_problem(self.config, instrument)
        if problem:
            return self._refuse(ctx, problem[0], problem[1])
        cfg = self.config
        self.interval = instrument.price_scale.to_units(str(cfg.price_interval))
        self.inst = instrument.inst
        self.ins = instrument
        self.amount = _minor(cfg.order_quantity)
        self.min_exit = max(_minor(cfg.min_order_value), instrument.spec.min_notional)
        if cfg.anchor not in ("aligned", "first_trade"):
            self.anchor = instrument.price_scale.to_units(cfg.anchor)
        elif cfg.anchor == "aligned":
            self.anchor = 0
        self.phase = "wait_price"

    def _refuse(self, ctx: Context, code: str, message: str) -> None:
        self.phase = "halted"
        self.halt_reason = message
        ctx.alert(AlertLevel.CRITICAL, f"grid_{code}", message)
        ctx.decide("grid", "refuse", code, message, self.inst)

    # -- prices ------------------------------------------------------------------------------

    def on_top(self, ctx: Context, inst: int) -> None:
        self.risk.on_market(ctx, inst)

    def on_book(self, ctx: Context, inst: int) -> None:
        self.risk.on_market(ctx, inst)

    def on_mark(self, ctx: Context, ev: MarkPriceUpdated) -> None:
        self.risk.on_mark(ctx, ev)

    def on_connection(self, ctx: Context, ev: ConnectionChanged) -> None:
        self.risk.on_connection(ctx, ev)

    def on_trade(self, ctx: Context, ev: TradePrinted) -> None:
        if ev.inst == self.inst:
            self.risk.on_market(ctx, ev.inst)
            self._on_price(ctx, ev.price)

    def on_kline(self, ctx: Context, ev: KlineUpdated) -> None:
        if self.monitor is not None:
            symbol = ctx.instrument(ev.inst).symbol
            if self.monitor.watches(symbol, ev.interval):
                change = self.monitor.on_kline(symbol, ev, ctx.now_ns)
                if change is not None:
                    self._on_monitor_change(ctx, change, symbol)
        # candle-only data: the close is the price (OpenSQT reads aggTrade; recorded candles
        # have no trades)
        if ev.inst == self.inst and ev.closed:
            self.risk.on_market(ctx, ev.inst)
            self._on_price(ctx, ev.close)

    def _on_price(self, ctx: Context, price: int) -> None:
        if price <= 0 or self.phase in ("halted", "wait_instrument"):
            return
        self.last_price = price
        st = ctx.state
        if self.phase == "wait_price" or (self.session != st.session and self.phase == "running"):
            # a new session (start or restart): nothing is placed before the account
            # snapshot is in and checked; OpenSQT's first price never produces an order either
            if self.anchor is None:
                self.anchor = price
            self.phase = "wait_account"
        if self.phase == "wait_account":
            if self.snapshot_requested_session != st.session:
                self.snapshot_requested_session = st.session
                ctx.request_snapshot(_SNAPSHOTKIND_ACCOUNT, self.inst, "grid startup")
            return
        if self.config.price_send_interval == 0:
            self._adjust(ctx)
        elif self.adjust_timer is None:
            at = ctx.now_ns + self.config.price_send_interval * 1_000_000
            self.adjust_timer = ctx.schedule(at, "grid:adjust")

    def on_timer(self, ctx: Context, key: str) -> None:
        if self.risk.on_timer(ctx, key):
            return
        if key == "grid:adjust":
            self.adjust_timer = None
            if self.phase == "running":
                self._adjust(ctx)
        elif key == "grid:reconcile":
            ctx.schedule(ctx.now_ns + self.config.reconcile_interval * 1_000_000_000, key)
            if self.phase == "running":
                ctx.request_snapshot(_SNAPSHOTKIND_ACCOUNT, self.inst, "grid reconcile")
        elif key == "grid:clean":
            ctx.schedule(ctx.now_ns + self.config.order_cleanup_interval * 1_000_000_000, key)
            if self.phase == "running":
                self._clean(ctx)

    # -- the lattice -------------------------------------------------------------------------

    def nearest(self, price: int) -> int:
        """G = A + round_half_away((P - A) / I) * I (OpenSQT §1.2, on integer ticks)."""
        a = self.anchor or 0
        return a + round_half_away(price - a, self.interval) * self.interval

    def _beyond(self, price: int, d: int) -> int:
        """The first lattice price strictly above (d=+1) / below (d=-1) ``price``."""
        a = self.anchor or 0
        k = (price - a) // self.interval
        if d > 0:
            return a + (k + 1) * self.interval
        return a + (k if (price - a) % self.interval else k - 1) * self.interval

    def entry_qty(self, price: int) -> int:
        """Lots for one level: amount / price on the step grid (half away from zero, as
        OpenSQT), raised to the exchange's minimum quantity and notional."""
        ins = self.ins
        assert ins is not None
        per_lot = price * ins.minor_per_ticklot
        lots = max(round_half_away(self.amount, per_lot), ins.spec.min_qty, 1)
        if lots * per_lot < ins.spec.min_notional:
            lots = -(-ins.spec.min_notional // per_lot)
        return lots

    # -- AdjustOrders ------------------------------------------------------------------------

    def _grid_orders(self, ctx: Context) -> list[Order]:
        return [o for o in ctx.state.orders_for(self.inst) if o.tag.startswith("g:")]

    def _adjust(self, ctx: Context) -> None:
        cfg = self.config
        price = self.last_price
        now = ctx.now_ns
        self.stats["adjusts"] += 1
        retry_unplaced(self, ctx)
        interval = self.interval
        active = sum(1 for o in self._grid_orders(ctx) if not o.cancel_pending)
        remaining = max(0, cfg.order_cleanup_threshold - active)
        entries_ok = self._entries_allowed(ctx, now)
        grid_price = self.nearest(price)
        new_entries = 0
        if entries_ok:
            for leg in self.legs:
                allowed = min(cfg.buy_window_size, remaining)
                placed = 0
                for i in range(cfg.buy_window_size):
                    if placed >= allowed:
                        break
                    s = grid_price - leg.d * i * interval
                    if s <= 0:
                        break  # no grid below zero (QuantMesh fixed negative prices)
                    slot = leg.slots.get(s)
                    if slot is not None and (slot.lock is not Lock.FREE or slot.holding):
                        continue
                    # the 0.1-interval buffer: an entry never sits at or through the market
                    if leg.d > 0 and not 10 * s < 10 * price - interval:
                        continue
                    if leg.d < 0 and not 10 * s > 10 * price + interval:
                        continue
                    self._place_entry(ctx, leg, leg.slot(s))
                    placed += 1
                remaining -= placed
                new_entries += placed
        merge_dust(self, ctx)
        self._place_exits(ctx, price, min(cfg.exit_window, max(0, remaining)))
        self._prune()

    def _entries_allowed(self, ctx: Context, now: int) -> bool:
        held = self._monitor_holds(ctx, now)
        if self.risk.should_panic_stop(ctx):
            return False  # a risk trip: only orders that reduce the position
        return not held and not (self.margin_lock_until and now < self.margin_lock_until)

    def _monitor_holds(self, ctx: Context, now: int) -> bool:
        """Whether the risk monitor holds entries; on the edge into holding, entries are
        cancelled (OpenSQT's CancelAllBuyOrders) and the decision journaled."""
        if self.monitor is not None:
            reason = "triggered" if self.monitor.triggered else self.monitor.blocked_reason(now)
            if reason != self.monitor_blocked:
                if reason and not self.monitor_blocked:
                    self._cancel_entries(ctx, f"risk monitor: {reason}")
                ctx.decide(
                    "risk",
                    "hold_entries" if reason else "resume_entries",
                    "volume_monitor",
                    reason or "risk monitor data fresh and normal",
                    self.inst,
                )
                self.monitor_blocked = reason
            return bool(reason)
        return False

    def _place_exits(self, ctx: Context, price: int, allowed: int) -> None:
        if self.exits_held:
            return
        cfg = self.config
        interval = self.interval
        window = cfg.exit_window * interval
        upstream = cfg.sell_window_rule == "upstream"
        candidates: list[tuple[int, int, _Leg, Slot]] = []
        for leg in self.legs:
            d = leg.d
            for s, slot in leg.slots.items():
                if slot.lock is not Lock.FREE or not slot.holding:
                    continue
                edge = s + d * interval if upstream else s
                if (d > 0 and edge > price + window) or (d < 0 and edge < price - window):
                    continue
                if self._notional_ok(leg, slot, price):
                    candidates.append((abs(s - price), s, leg, slot))
        candidates.sort(key=lambda c: (c[0], c[1], c[2].d))
        for _, _, leg, slot in candidates[:allowed]:
            self._place_exit(ctx, leg, slot, price)

    def _exit_price(self, leg: _Leg, slot: Slot, price: int) -> int:
        x = slot.price + leg.d * self.interval
        if (leg.d > 0 and x < price) or (leg.d < 0 and x > price):
            x = self._beyond(price, leg.d)  # never sell below / buy above the market
        return x

    def _notional_ok(self, leg: _Leg, slot: Slot, price: int) -> bool:
        ins = self.ins
        assert ins is not None
        return ins.notional(self._exit_price(leg, slot, price), slot.qty) >= self.min_exit

    def _tif(self, slot: Slot) -> TimeInForce:
        cfg = self.config
        if cfg.post_only and slot.post_only_fails < cfg.post_only_fail_limit:
            return _TIMEINFORCE_GTX
        return _TIMEINFORCE_GTC

    def _place_entry(self, ctx: Context, leg: _Leg, slot: Slot) -> None:
        qty = self.entry_qty(slot.price)
        order = self.risk.place(
            ctx,
            self.inst,
            leg.entry_side,
            slot.price,
            qty,
            tif=self._tif(slot),
            tag=f"g:{slot.price}:E:{leg.letter}",
        )
        if order is not None:  # None: the risk service denied it (journaled)
            slot.apply(T.PLACE_ENTRY, client_id=order.client_id)

    def _place_exit(self, ctx: Context, leg: _Leg, slot: Slot, price: int) -> None:
        order = self.risk.place(
            ctx,
            self.inst,
            leg.exit_side,
            self._exit_price(leg, slot, price),
            slot.qty,
            tif=self._tif(slot),
            reduce_only=self.config.mode != "neutral",
            tag=f"g:{slot.price}:X:{leg.letter}",
        )
        if order is not None:
            slot.apply(T.PLACE_EXIT, client_id=order.client_id)

    def _prune(self) -> None:
        for leg in self.legs:
            idle = [
                p
                for p, s in leg.slots.items()
                if s.lock is Lock.FREE and not s.holding and not s.qty and not s.post_only_fails
            ]
            for p in idle:
                del leg.slots[p]

    # -- order events ------------------------------------------------------------------------

    def _slot_of(self, order: Order) -> tuple[_Leg, Slot, bool] | None:
        """(leg, slot, is_entry) when ``order`` is a grid order still owning its slot."""
        tag = order.tag
        if order.inst != self.inst or not tag.startswith("g:"):
            return None
        _, price_text, role, letter = tag.split(":")
        leg = self.legs[0] if self.legs[0].letter == letter else self.legs[-1]
        slot = leg.slots.get(int(price_text))
        if slot is None or slot.client_id != order.client_id:
            return None  # stale: the slot has moved on (OpenSQT's guard, but always on)
        return leg, slot, role == "E"

    def on_order(self, ctx: Context, order: Order) -> None:
        ref = self._slot_of(order)
        if ref is None:
            return
        leg, slot, is_entry = ref
        status = order.status
        if status is _ORDERSTATUS_NEW:
            slot.apply(T.ACCEPTED)
        elif status is _ORDERSTATUS_REJECTED:
            slot.apply(T.REJECTED)
            self._on_reject(ctx, leg, slot, order)
        elif status in (_ORDERSTATUS_CANCELED, _ORDERSTATUS_EXPIRED):
            self._ended(slot, is_entry)
            if not is_entry:
                retry_unplaced(self, ctx)

    def _ended(self, slot: Slot, is_entry: bool) -> None:
        if not is_entry:
            slot.apply(T.EXIT_ENDED)
        elif slot.qty:
            slot.apply(T.ENTRY_ENDED_PARTIAL)
        else:
            slot.apply(T.ENTRY_ENDED_EMPTY)

    def _on_reject(self, ctx: Context, leg: _Leg, slot: Slot, order: Order) -> None:
        code = order.reject_code
        if code == -5022:  # post-only would have crossed: next try may fall back to GTC
            slot.post_only_fails += 1
            self.stats["post_only_refusals"] += 1
        elif code == -2019:
            self._margin_lock(ctx)
        elif code == -4061:
            self._halt(
                ctx,
                "hedge_mode",
                "the account is in hedge mode (-4061); switch it to one-way mode. "
                "This grid's orders were cancelled",
            )
        elif code == -2022:
            # reduce-only refused: the exchange holds less than this slot thinks (ADL, a
            # liquidation, a manual close). Hold exits and let reconciliation repair.
            self.exits_held = True
            ctx.decide(
                "grid",
                "hold_exits",
                "reduce_only_rejected",
                f"exit of slot {self._p(slot.price)} refused -2022; reconciling",
                self.inst,
            )
            ctx.request_snapshot(_SNAPSHOTKIND_ACCOUNT, self.inst, "reduce-only exit refused")
        else:
            slot.failures += 1
            if slot.failures == MAX_SLOT_FAILURES:
                ctx.alert(
                    AlertLevel.WARNING,
                    "grid_slot_failing",
                    f"slot {self._p(slot.price)}: {MAX_SLOT_FAILURES} orders refused in a row (last {code})",
                )

    def _margin_lock(self, ctx: Context) -> None:
        self.margin_strikes = min(self.margin_strikes + 1, MAX_MARGIN_BACKOFF.bit_length())
        seconds = self.config.margin_lock_duration_seconds * (1 << (self.margin_strikes - 1))
        self.margin_lock_until = ctx.now_ns + seconds * 1_000_000_000
        self.stats["margin_locks"] += 1
        ctx.decide(
            "grid",
            "margin_lock",
            "-2019",
            f"margin insufficient: no new entries for {seconds} s (exits continue)",
            self.inst,
        )

    def on_fill(self, ctx: Context, order: Order | None, ev: OrderFilled) -> None:
        if ev.inst != self.inst:
            return
        self.risk.on_fill(ctx, order, ev)
        if order is None or not order.tag.startswith("g:"):
            # not a grid order (the risk service's flatten, a manual or unknown order): the
            # position moved all the same, and the ledger must follow it
            signed = ev.qty if ev.side is _SIDE_BUY else -ev.qty
            who = order.client_id if order is not None else f"unknown order {ev.client_id}"
            repair_position(self, ctx, signed, ev.price, f"fill of {who}")
            return
        ref = self._slot_of(order)
        if ref is None:
            self._unattributed_fill(ctx, order, ev)
            return
        leg, slot, is_entry = ref
        done = order.status is _ORDERSTATUS_FILLED
        if is_entry:
            slot.apply(T.ENTRY_FILLED if done else T.ENTRY_PARTIAL, delta=ev.qty)
            if done:
                slot.post_only_fails = slot.failures = 0
                slot.entries += 1
                self.stats["entries"] += 1
                self.margin_strikes = 0
            return
        gain = (ev.price - slot.price) * ev.qty * leg.d
        slot.realized += gain
        self.stats["realized_ticklots"] += gain
        if not done:
            slot.apply(T.EXIT_PARTIAL, delta=-ev.qty)
            return
        residual = slot.qty - ev.qty
        slot.apply(T.EXIT_FILLED_RESIDUAL if residual else T.EXIT_FILLED, delta=-ev.qty)
        slot.post_only_fails = slot.failures = 0
        slot.exits += 1
        self.stats["exits"] += 1
        self.stats["round_trips"] += 1

    def _unattributed_fill(self, ctx: Context, order: Order, ev: OrderFilled) -> None:
        """A fill for a grid order that no longer owns its slot (told after the cancel, or
        after reconciliation settled the order): the position moved, so the ledger follows,
        as an adoption or a drop, journaled."""
        signed = ev.qty if ev.side is _SIDE_BUY else -ev.qty
        repair_position(self, ctx, signed, ev.price, f"late fill of {order.client_id}")

    # -- cleaner (§4.4) ----------------------------------------------------------------------

    def _clean(self, ctx: Context) -> None:
        cfg = self.config
        resting = [
            o
            for o in self._grid_orders(ctx)
            if o.status is _ORDERSTATUS_NEW and not o.cancel_pending
        ]
        if len(resting) < cfg.order_cleanup_threshold:
            return
        entries = [o for o in resting if o.tag.split(":")[2] == "E"]
        exits = [o for o in resting if o.tag.split(":")[2] == "X"]
        batch = cfg.cleanup_batch_size
        if len(entries) > len(exits):
            n_entries, n_exits = batch, 0
        elif len(exits) > len(entries):
            n_entries, n_exits = 0, batch
        else:
            n_entries, n_exits = batch // 2, batch - batch // 2

        def distance(o: Order) -> int:
            return abs(int(o.tag.split(":")[1]) - self.last_price)

        # the farthest from the price first (OpenSQT: lowest buys, highest sells)
        victims = sorted(entries, key=lambda o: (-distance(o), o.client_id))[:n_entries]
        victims += sorted(exits, key=lambda o: (-distance(o), o.client_id))[:n_exits]
        for o in victims:
            self.risk.cancel(ctx, o)
        self.stats["cleaner_cancels"] += len(victims)
        ctx.decide(
            "grid",
            "clean",
            "order_cleanup_threshold",
            f"{len(resting)} resting orders >= {cfg.order_cleanup_threshold}: cancelled {len(victims)} farthest",
            self.inst,
        )

    def _cancel_entries(self, ctx: Context, reason: str) -> None:
        n = 0
        for o in self._grid_orders(ctx):
            if o.tag.split(":")[2] == "E" and not o.cancel_pending:
                self.risk.cancel(ctx, o)
                n += 1
        if n:
            ctx.decide(
                "risk", "cancel_entries", "grid", f"{n} entries cancelled: {reason}", self.inst
            )

    def _halt(self, ctx: Context, code: str, message: str) -> None:
        for o in self._grid_orders(ctx):
            ctx.cancel(o)
        self.phase = "halted"
        self.halt_reason = message
        ctx.alert(AlertLevel.CRITICAL, f"grid_{code}", message)
        ctx.decide("grid", "halt", code, message, self.inst)

    def on_operator(self, ctx: Context, ev: OperatorCommanded) -> None:
        if self.risk.on_operator(ctx, ev):
            return
        if ev.command in ("stop", "shutdown") and self.phase != "halted":
            if self.config.cancel_on_exit:
                for o in self._grid_orders(ctx):
                    ctx.cancel(o)
            self.phase = "halted"
            self.halt_reason = f"operator {ev.command}"
            ctx.decide(
                "operator",
                "stop",
                ev.command,
                "grid stopped; own orders cancelled"
                if self.config.cancel_on_exit
                else "grid stopped; orders left live (cancel_on_exit: false)",
                self.inst,
            )

    def _on_monitor_change(self, ctx: Context, change: str, symbol: str) -> None:
        if change == "trip":
            self.stats["risk_trips"] += 1
        ctx.decide(
            "risk",
            change,
            "volume_spike",
            f"every monitored symbol closed below its average on {self.config.risk_control.volume_multiplier}x volume (last: {symbol})"
            if change == "trip"
            else f"{self.monitor.recovery_needed if self.monitor else 0} symbols back to normal",
            self.inst,
        )
        if change == "trip" and self.phase == "running":
            self._monitor_holds(ctx, ctx.now_ns)

    # -- reconciliation (§4.3, fixed) and startup --------------------------------------------

    def on_account(self, ctx: Context, ev: AccountSnapshotReceived) -> None:
        if self.phase in ("halted", "wait_instrument", "wait_price"):
            return
        startup = self.session != ctx.state.session
        if startup:
            self.session = ctx.state.session
            if not self._safety_check(ctx, ev):
                return
            self.phase = "running"
            if not self.timers_started:
                self.timers_started = True
                ctx.schedule(
                    ctx.now_ns + self.config.reconcile_interval * 1_000_000_000, "grid:reconcile"
                )
                ctx.schedule(
                    ctx.now_ns + self.config.order_cleanup_interval * 1_000_000_000, "grid:clean"
                )
        reconcile(self, ctx, ev, immediate=startup)

    def _safety_check(self, ctx: Context, ev: AccountSnapshotReceived) -> bool:
        """OpenSQT's CheckAccountSafety (§4.1), skipped when a position exists (as there)."""
        cfg = self.config
        ins = self.ins
        assert ins is not None
        if any(p.inst == self.inst and p.qty for p in ev.positions):
            ctx.decide(
                "grid", "safety_check", "skipped", "a position exists (as OpenSQT)", self.inst
            )
            return True
        asset = ins.spec.margin_asset
        available = sum(b.available for b in ev.balances if b.asset == asset)
        problem = ""
        if cfg.leverage > cfg.max_leverage:
            problem = f"leverage {cfg.leverage} > max_leverage {cfg.max_leverage}"
        elif available <= 0:
            problem = f"no available {asset} balance"
        else:
            levels = available * cfg.leverage // self.amount
            if levels < cfg.position_safety_check:
                problem = (
                    f"available {Decimal(available) / QUOTE_SCALE} {asset} x leverage "
                    f"{cfg.leverage} / order_quantity {cfg.order_quantity} = {levels} levels, "
                    f"below position_safety_check {cfg.position_safety_check}: add margin, raise "
                    "leverage or lower order_quantity"
                )
            else:
                # net per round trip = I*Q/P - f*Q - f*(P+I)*Q/P > 0  <=>  I*(1-f) > 2*f*P
                f = cfg.fee_rate
                if Decimal(self.interval) * (1 - f) <= 2 * f * Decimal(self.last_price):
                    problem = (
                        f"price_interval {cfg.price_interval} does not cover fees of "
                        f"{f} per side at price {ins.price_text(self.last_price)}: widen the interval"
                    )
        if problem:
            self._refuse(ctx, "safety_check", f"startup safety check failed: {problem}")
            return False
        ctx.decide(
            "grid",
            "safety_check",
            "passed",
            f"available {Decimal(available) / QUOTE_SCALE} {asset}",
            self.inst,
        )
        return True

    def ledger_position(self) -> int:
        return sum(leg.d * leg.holding() for leg in self.legs)

    # -- helpers -----------------------------------------------------------------------------

    def _ticks_from_e8(self, e8: int) -> int:
        ins = self.ins
        assert ins is not None
        scale = ins.price_scale
        return round_half_away(e8, scale.unit * 10 ** (8 - scale.decimals))

    def _p(self, ticks: int) -> str:
        return self.ins.price_text(ticks) if self.ins else str(ticks)

    def _q(self, lots: int) -> str:
        return self.ins.qty_text(lots) if self.ins else str(lots)

    def candles_needed(self) -> list[tuple[str, str, int]]:
        # the volume breaker fails closed until it has its window of closed candles (and the
        # one before): loaded at start, a live grid need not wait window x interval
        rc = self.config.risk_control
        if self.monitor is None:
            return []
        return [(s, rc.interval, rc.average_window + 1) for s in rc.monitor_symbols]

    def describe(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "halt_reason": self.halt_reason,
            "anchor": self.anchor,
            "interval_ticks": self.interval,
            "last_price": self.last_price,
            "ledger_position": self.ledger_position(),
            "margin_lock_until_ns": self.margin_lock_until,
            "exits_held": self.exits_held,
            "unplaced": self.unplaced,
            "monitor": self.monitor.describe() if self.monitor else None,
            "risk": self.risk.describe(),
            "stats": dict(self.stats),
            "slots": {
                leg.letter: [leg.slots[p].describe() for p in sorted(leg.slots)]
                for leg in self.legs
            },
        }


def instrument_problem(cfg: GridConfig, instrument: Instrument) -> tuple[str, str] | None:
    """(code, one-line message) when the config does not fit the symbol's exchange rules:
    checked when the instrument loads, and by the config loader against the built-in rules."""
    scale = instrument.price_scale
    try:
        scale.to_units(str(cfg.price_interval))
    except ValueError:
        return (
            "bad_interval",
            f"price_interval {cfg.price_interval} is not a multiple of {cfg.symbol}'s tick "
            f"{instrument.spec.tick_size}: use a multiple of the tick",
        )
    if _minor(cfg.order_quantity) < instrument.spec.min_notional:
        return (
            "amount_below_min_notional",
            f"order_quantity {cfg.order_quantity} is below {cfg.symbol}'s minimum order "
            f"value {Decimal(instrument.spec.min_notional) / QUOTE_SCALE}: raise it",
        )
    if cfg.anchor not in ("aligned", "first_trade"):
        try:
            scale.to_units(cfg.anchor)
        except ValueError:
            return ("bad_anchor", f"anchor {cfg.anchor} is not on {cfg.symbol}'s tick grid")
    return None


def _minor(amount: Decimal) -> int:
    """Quote amount -> minor units (1e-8), exactly."""
    return int((Decimal(amount) * QUOTE_SCALE).to_integral_value())
