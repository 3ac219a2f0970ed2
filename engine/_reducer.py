"""The reducer: ``step(state, record) -> intents``. Pure, single-threaded, bounded per event.

Theory of operation
-------------------
The sequencer (live runtime, backtest driver, or journal reader in replay) hands ``step`` one
``EventRecord`` at a time: the event plus the sequence number and receive time it was given.
``step`` is the only thing that changes ``EngineState``:

1. it advances ``state.seq`` and ``state.now_ns`` (engine time never goes backwards);
2. a handler chosen by the event's type (a dict lookup, the fastest dispatch in CPython) does
   the engine's own bookkeeping — books, orders, positions, timers — then calls the strategy's
   hook;
3. whatever the handler and strategy asked for through the ``Context`` is returned as intents.

Handlers validate, then mutate: an event the engine cannot apply (a venue oddity) raises
``InvalidEvent`` before changing anything; ``step`` drops the intents of that step, journals
an alert instead, and carries on. Anything else that escapes a handler is a bug: the state is
marked failed and every later ``step`` raises ``InvariantViolation`` (crash-only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._book import BookOutcome, BookSync, OrderBook
from ._context import NO_INTENTS, Context
from ._errors import InvalidEvent, InvariantViolation
from ._events import (
    AccountSnapshotReceived,
    AccountUpdated,
    AmendRejected,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelRejected,
    ConnectionChanged,
    FundingSettled,
    InstrumentLoaded,
    KlineUpdated,
    MarkPriceUpdated,
    OperatorCommanded,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusUnknown,
    SessionStarted,
    TimerFired,
    TopOfBookUpdated,
    TradePrinted,
)
from ._instrument import Instrument
from ._intents import AlertLevel, Intent, RaiseAlert, SnapshotKind
from ._order_state import OrderStatus, Trigger, next_status
from ._reconcile import reconcile_orders
from ._records import EventRecord
from ._state import EngineState, Order

__all__ = ["Engine", "step"]

# Enum members looked up on hot paths, bound once: on CPython 3.11 `Enum.MEMBER` costs
# ~100 ns per lookup (a module constant ~10 ns)
_BOOKOUTCOME_APPLIED = BookOutcome.APPLIED
_BOOKOUTCOME_BUFFERED = BookOutcome.BUFFERED
_BOOKOUTCOME_GAP = BookOutcome.GAP
_BOOKOUTCOME_STALE = BookOutcome.STALE
_BOOKSYNC_SYNCED = BookSync.SYNCED
_ORDERSTATUS_PENDING_NEW = OrderStatus.PENDING_NEW
_SNAPSHOTKIND_BOOK = SnapshotKind.BOOK


Handler = Callable[[EngineState, Context, Any], None]


# ---------------------------------------------------------------------------------------------
# market data


def _on_instrument(st: EngineState, ctx: Context, ev: InstrumentLoaded) -> None:
    instrument = Instrument(ev)  # validates before anything changes
    st.instruments[ev.inst] = instrument
    st.symbols[ev.symbol] = ev.inst
    if ev.inst not in st.books:
        st.books[ev.inst] = OrderBook(ev.inst)
        st.tops[ev.inst] = TopOfBookUpdated(ev.inst, 0, 0, 0, 0, 0, 0)
    st.position(ev.inst)
    st.strategy.on_instrument(ctx, instrument)


def _book_of(st: EngineState, inst: int) -> OrderBook:
    book = st.books.get(inst)
    if book is None:
        raise InvalidEvent(
            "unknown_instrument", f"book event for instrument {inst} before it was loaded"
        )
    return book


def _after_book_change(
    st: EngineState, ctx: Context, book: OrderBook, outcome: BookOutcome
) -> None:
    inst = book.inst
    if outcome is _BOOKOUTCOME_GAP:
        st.stats["book_gaps"] += 1
        ctx.alert(AlertLevel.WARNING, "book_gap", f"inst {inst}: {book.gap_detail}; resyncing")
        st.snapshot_requested[inst] = True
        ctx.request_snapshot(_SNAPSHOTKIND_BOOK, inst, f"gap: {book.gap_detail}")
        return
    if outcome is _BOOKOUTCOME_BUFFERED:
        if not st.snapshot_requested.get(inst):
            st.snapshot_requested[inst] = True
            ctx.request_snapshot(_SNAPSHOTKIND_BOOK, inst, "initial sync")
        return
    if outcome is not _BOOKOUTCOME_APPLIED or not book.synced:
        return
    top = st.tops[inst]
    uid = book.last_update_id
    if uid == top.update_id:
        st.stats["bbo_checks"] += 1
        if top.bid == book.best_bid and top.ask == book.best_ask:
            st.stats["bbo_agree"] += 1
    elif uid > top.update_id:
        bid, ask = book.best_bid, book.best_ask
        changed = bid != top.bid or ask != top.ask
        st.tops[inst] = TopOfBookUpdated(
            inst, book.ts_ns, uid, bid, book.bids.get(bid, 0), ask, book.asks.get(ask, 0)
        )
        st.strategy.on_book(ctx, inst)
        if changed:
            st.strategy.on_top(ctx, inst)
        return
    st.strategy.on_book(ctx, inst)


def _on_snapshot(st: EngineState, ctx: Context, ev: BookSnapshotReceived) -> None:
    book = _book_of(st, ev.inst)
    outcome = book.apply_snapshot(ev)
    if outcome is not _BOOKOUTCOME_STALE:
        st.snapshot_requested[ev.inst] = False
    _after_book_change(st, ctx, book, outcome)


def _on_delta(st: EngineState, ctx: Context, ev: BookDeltaReceived) -> None:
    book = _book_of(st, ev.inst)
    _after_book_change(st, ctx, book, book.apply_delta(ev))


def _on_top(st: EngineState, ctx: Context, ev: TopOfBookUpdated) -> None:
    tops = st.tops
    inst = ev.inst
    top = tops.get(inst)
    if top is None:
        raise InvalidEvent(
            "unknown_instrument", f"bookTicker for instrument {inst} before it was loaded"
        )
    uid = ev.update_id
    if uid < top.update_id:
        return  # older than what the book already showed
    book = st.books[inst]
    if uid == book.last_update_id and book.sync is _BOOKSYNC_SYNCED:
        st.stats["bbo_checks"] += 1
        if ev.bid == book.best_bid and ev.ask == book.best_ask:
            st.stats["bbo_agree"] += 1
    tops[inst] = ev
    if ev.bid != top.bid or ev.ask != top.ask:
        st.strategy.on_top(ctx, inst)


def _on_trade(st: EngineState, ctx: Context, ev: TradePrinted) -> None:
    st.strategy.on_trade(ctx, ev)


def _on_mark(st: EngineState, ctx: Context, ev: MarkPriceUpdated) -> None:
    st.marks[ev.inst] = ev
    st.strategy.on_mark(ctx, ev)


def _on_kline(st: EngineState, ctx: Context, ev: KlineUpdated) -> None:
    st.strategy.on_kline(ctx, ev)


# ---------------------------------------------------------------------------------------------
# time, session, connections, operator


def _on_timer(st: EngineState, ctx: Context, ev: TimerFired) -> None:
    key = st.timers.pop(ev.timer_id, None)
    if key is not None:  # a cancelled timer may still fire: ignore it
        st.strategy.on_timer(ctx, key)


def _on_session(st: EngineState, ctx: Context, ev: SessionStarted) -> None:
    if ev.session <= st.session:
        raise InvalidEvent("bad_session", f"session {ev.session} after session {st.session}")
    st.session = ev.session
    st.session_started_seq = st.seq
    # what the books showed belongs to the previous session: a new one starts from a fresh
    # snapshot and the next bookTicker, as a first start does. Update ids are not trusted
    # across sessions either (a restarted local exchange begins them again, and its
    # diffs and tickers would be dropped as old until they passed the previous session's)
    for inst, book in st.books.items():
        book.forget()
        st.tops[inst] = TopOfBookUpdated(inst, 0, 0, 0, 0, 0, 0)
        st.snapshot_requested[inst] = False


def _on_connection(st: EngineState, ctx: Context, ev: ConnectionChanged) -> None:
    st.connections[ev.stream] = int(ev.state)
    st.strategy.on_connection(ctx, ev)


def _on_operator(st: EngineState, ctx: Context, ev: OperatorCommanded) -> None:
    st.strategy.on_operator(ctx, ev)


# ---------------------------------------------------------------------------------------------
# orders


def _known(st: EngineState, client_id: str) -> Order:
    order = st.order(client_id)
    if order is None:
        raise InvalidEvent("unknown_order", f"event for unknown order {client_id}")
    return order


def _transition(st: EngineState, ctx: Context, order: Order, trigger: Trigger, ts_ns: int) -> None:
    new = next_status(order.status, trigger, order.client_id)  # raises before any change
    old = order.status
    order.status = new
    order.updated_ns = st.now_ns
    if new is not old and not order.is_open:
        order.cancel_pending = False
        st.close_order(order)
    if new is not old:
        st.strategy.on_order(ctx, order)


def _on_accepted(st: EngineState, ctx: Context, ev: OrderAccepted) -> None:
    order = _known(st, ev.client_id)
    next_status(order.status, Trigger.ACCEPTED, order.client_id)
    order.order_id = ev.order_id
    _transition(st, ctx, order, Trigger.ACCEPTED, ev.ts_ns)


def _on_rejected(st: EngineState, ctx: Context, ev: OrderRejected) -> None:
    order = _known(st, ev.client_id)
    next_status(order.status, Trigger.REJECTED, order.client_id)
    order.reject_code = ev.code
    _transition(st, ctx, order, Trigger.REJECTED, ev.ts_ns)


def _on_canceled(st: EngineState, ctx: Context, ev: OrderCanceled) -> None:
    order = _known(st, ev.client_id)
    _transition(st, ctx, order, Trigger.CANCELED, ev.ts_ns)


def _on_expired(st: EngineState, ctx: Context, ev: OrderExpired) -> None:
    order = _known(st, ev.client_id)
    _transition(st, ctx, order, Trigger.EXPIRED, ev.ts_ns)


def _on_unknown(st: EngineState, ctx: Context, ev: OrderStatusUnknown) -> None:
    order = _known(st, ev.client_id)
    _transition(st, ctx, order, Trigger.UNKNOWN, ev.ts_ns)


def _on_amended(st: EngineState, ctx: Context, ev: OrderAmended) -> None:
    order = _known(st, ev.client_id)
    next_status(order.status, Trigger.AMENDED, order.client_id)
    if ev.qty < order.filled:
        raise InvalidEvent(
            "bad_amend", f"order {order.client_id}: qty {ev.qty} below filled {order.filled}"
        )
    order.price = ev.price
    order.qty = ev.qty
    _transition(st, ctx, order, Trigger.AMENDED, ev.ts_ns)


def _on_cancel_rejected(st: EngineState, ctx: Context, ev: CancelRejected) -> None:
    order = st.order(ev.client_id)
    if order is not None:
        order.cancel_pending = False
    if ev.code != -2011:  # -2011: not open any more; its final state arrives on its own
        ctx.alert(AlertLevel.WARNING, "cancel_rejected", f"{ev.client_id}: {ev.code} {ev.message}")


def _on_fill(st: EngineState, ctx: Context, ev: OrderFilled) -> None:
    instrument = st.instruments.get(ev.inst)
    if instrument is None:
        raise InvalidEvent(
            "unknown_instrument", f"fill for instrument {ev.inst} before it was loaded"
        )
    order = st.order(ev.client_id)
    if order is None:
        # not ours (placed by hand, by an earlier process, or a liquidation): the position
        # still moved, so account for it and say so
        pos = st.position(ev.inst)
        pos.apply_fill(ev.side, ev.price, ev.qty)
        pos.fees += ev.fee
        st.stats["fills"] += 1
        ctx.alert(
            AlertLevel.WARNING,
            "unknown_fill",
            f"fill {ev.trade_id} for unknown order {ev.client_id}",
        )
        st.strategy.on_fill(ctx, None, ev)
        return
    if ev.trade_id in order.trade_ids:
        return  # duplicate (TRADE_LITE and ORDER_TRADE_UPDATE, or a replayed stream)
    if ev.side is not order.side:
        raise InvalidEvent(
            "bad_fill", f"fill side {ev.side.name} for {order.side.name} order {order.client_id}"
        )
    filled = order.filled + ev.qty
    if filled > order.qty:
        raise InvalidEvent(
            "overfill", f"order {order.client_id}: fills {filled} exceed size {order.qty}"
        )
    trigger = Trigger.FILL_FINAL if filled == order.qty else Trigger.FILL
    next_status(order.status, trigger, order.client_id)
    # validated: now mutate
    order.trade_ids.append(ev.trade_id)
    order.filled = filled
    pos = st.position(ev.inst)
    pos.apply_fill(ev.side, ev.price, ev.qty)
    pos.fees += ev.fee
    st.stats["fills"] += 1
    if order.status is _ORDERSTATUS_PENDING_NEW and ev.order_id:
        order.order_id = ev.order_id
    _transition(st, ctx, order, trigger, ev.ts_ns)
    st.strategy.on_fill(ctx, order, ev)


def _on_amend_rejected(st: EngineState, ctx: Context, ev: AmendRejected) -> None:
    order = st.order(ev.client_id)
    if order is not None:
        st.strategy.on_order(ctx, order)
    if ev.code != -5027:  # -5027: "no need to modify"
        ctx.alert(AlertLevel.WARNING, "amend_rejected", f"{ev.client_id}: {ev.code} {ev.message}")


def _on_funding(st: EngineState, ctx: Context, ev: FundingSettled) -> None:
    st.position(ev.inst).funding += ev.amount
    st.strategy.on_funding(ctx, ev)


def _on_account_update(st: EngineState, ctx: Context, ev: AccountUpdated) -> None:
    for b in ev.balances:
        st.balances[b.asset] = b.wallet
    st.strategy.on_account_update(ctx, ev)


def _on_account(st: EngineState, ctx: Context, ev: AccountSnapshotReceived) -> None:
    for b in ev.balances:
        st.balances[b.asset] = b.wallet
    if not st.strategy.reconciles_orders:
        reconcile_orders(st, ctx, ev)
    st.strategy.on_account(ctx, ev)


_HANDLERS: dict[type, Handler] = {
    InstrumentLoaded: _on_instrument,
    BookSnapshotReceived: _on_snapshot,
    BookDeltaReceived: _on_delta,
    TopOfBookUpdated: _on_top,
    TradePrinted: _on_trade,
    MarkPriceUpdated: _on_mark,
    KlineUpdated: _on_kline,
    TimerFired: _on_timer,
    SessionStarted: _on_session,
    ConnectionChanged: _on_connection,
    OperatorCommanded: _on_operator,
    OrderAccepted: _on_accepted,
    OrderRejected: _on_rejected,
    OrderFilled: _on_fill,
    OrderCanceled: _on_canceled,
    OrderExpired: _on_expired,
    OrderStatusUnknown: _on_unknown,
    OrderAmended: _on_amended,
    CancelRejected: _on_cancel_rejected,
    AmendRejected: _on_amend_rejected,
    AccountSnapshotReceived: _on_account,
    FundingSettled: _on_funding,
    AccountUpdated: _on_account_update,
}


class Engine:
    """A state plus its context: call ``step(record)`` for each journaled event."""

    __slots__ = ("ctx", "state")

    def __init__(self, state: EngineState) -> None:
        self.state = state
        self.ctx = Context(state)

    def step(self, rec: EventRecord) -> Sequence[Intent]:
        st = self.state
        seq = rec.seq
        if seq <= st.seq or st.failed:
            self._refuse(rec)
        st.seq = seq
        t = rec.recv_ns
        if t > st.now_ns:
            st.now_ns = t
        ctx = self.ctx
        ev = rec.event
        try:
            _HANDLERS[type(ev)](st, ctx, ev)
        except InvalidEvent as e:
            # nothing changed (handlers validate before mutating); forget what the strategy
            # may have asked for and journal why
            ctx.intents.clear()
            st.stats["invalid_events"] += 1
            st.stats["alerts"] += 1
            ctx.intents.append(RaiseAlert(AlertLevel.WARNING, e.code, str(e)))
        except Exception as e:
            st.failed = f"seq {seq}: {type(e).__name__}: {e}"
            raise
        if ctx.intents:
            return ctx.take()
        return NO_INTENTS

    def _refuse(self, rec: EventRecord) -> None:
        st = self.state
        if st.failed:
            raise InvariantViolation(f"engine stopped after an earlier failure: {st.failed}")
        raise InvariantViolation(f"sequence went backwards: {rec.seq} after {st.seq}")


def step(engine: Engine, rec: EventRecord) -> Sequence[Intent]:
    """Apply one journaled event; returns the intents it produced (often none)."""
    return engine.step(rec)
