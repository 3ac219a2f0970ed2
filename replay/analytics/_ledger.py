"""Everything about our own orders, fills and money, rebuilt from one pass over a journal.

These events are a few percent of a journal, so this side is plain Python written for
clarity; the read loop (``_collect.py``) hands them over one by one. Position accounting is
the engine's own ``Position`` (average cost, the same rounding), so realized PnL here is the
number the engine and the backtest summary compute, not an approximation of it.
"""

from __future__ import annotations

from typing import Any

from engine import (
    AccountUpdated,
    AmendOrder,
    AmendRejected,
    CancelAllOrders,
    CancelOrder,
    CancelRejected,
    FundingSettled,
    Instrument,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusUnknown,
    PlaceOrder,
    Position,
    RaiseAlert,
    RecordDecision,
    Side,
)

__all__ = ["ORDER_EVENT_TYPES", "Ledger", "Rows", "slot_of"]

ORDER_EVENT_TYPES = (
    OrderAccepted,
    OrderRejected,
    OrderFilled,
    OrderCanceled,
    OrderExpired,
    OrderStatusUnknown,
    OrderAmended,
    CancelRejected,
    AmendRejected,
)


class Rows:
    """A table under construction: one Python list per column."""

    def __init__(self, *names: str) -> None:
        self.cols: dict[str, list[Any]] = {n: [] for n in names}

    def add(self, *values: Any) -> None:
        for col, v in zip(self.cols.values(), values):
            col.append(v)

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())))


def slot_of(tag: str) -> str | None:
    """The grid slot or quoting level a strategy tag names: ``g:12:E`` -> ``12``,
    ``q:b1`` -> ``b1``; None for untagged orders."""
    if not tag:
        return None
    parts = tag.split(":")
    return parts[1] if len(parts) > 1 else tag


class _Order:
    """One order's life, filled in as its events arrive (times are receive times, ns)."""

    __slots__ = (
        "accepted_ns",
        "amends",
        "cancel_reject_code",
        "cancel_requested_ns",
        "canceled_ns",
        "client_id",
        "expire_reason",
        "expired_ns",
        "fee_minor",
        "filled_lots",
        "fills",
        "first_fill_ns",
        "inst",
        "last_fill_ns",
        "maker_fills",
        "notional_ticklots",
        "order_id",
        "order_type",
        "placed_ns",
        "placed_seq",
        "price",
        "qty",
        "reduce_only",
        "reject_code",
        "reject_message",
        "rejected_ns",
        "side",
        "tag",
        "tif",
        "unknown",
    )

    def __init__(self, seq: int, recv: int, p: PlaceOrder) -> None:
        self.client_id = p.client_id
        self.inst = p.inst
        self.side = int(p.side)
        self.price = p.price
        self.qty = p.qty
        self.tif = p.tif.name
        self.order_type = p.order_type.name
        self.reduce_only = p.reduce_only
        self.tag = getattr(p, "tag", "")  # journals written before tags existed have none
        self.placed_seq = seq
        self.placed_ns: int | None = recv
        self.accepted_ns: int | None = None
        self.order_id: int | None = None
        self.first_fill_ns: int | None = None
        self.last_fill_ns: int | None = None
        self.cancel_requested_ns: int | None = None
        self.canceled_ns: int | None = None
        self.expired_ns: int | None = None
        self.expire_reason: int | None = None
        self.rejected_ns: int | None = None
        self.reject_code: int | None = None
        self.reject_message: str | None = None
        self.cancel_reject_code: int | None = None
        self.filled_lots = 0
        self.notional_ticklots = 0
        self.fee_minor = 0
        self.fills = 0
        self.maker_fills = 0
        self.amends = 0
        self.unknown = 0

    @property
    def status(self) -> str:
        if self.rejected_ns is not None:
            return "REJECTED"
        if self.filled_lots >= self.qty:
            return "FILLED"
        if self.canceled_ns is not None:
            return "CANCELED"
        if self.expired_ns is not None:
            return "EXPIRED"
        if self.unknown and self.accepted_ns is None and not self.fills:
            return "UNKNOWN"
        if self.accepted_ns is None and not self.fills:
            return "PENDING"
        return "PARTIALLY_FILLED" if self.filled_lots else "NEW"

    @property
    def end_ns(self) -> int | None:
        """When the order stopped resting (filled, canceled, expired, rejected); None if open."""
        if self.rejected_ns is not None:
            return self.rejected_ns
        if self.filled_lots >= self.qty:
            return self.last_fill_ns
        return self.canceled_ns if self.canceled_ns is not None else self.expired_ns


def _since(start: int | None, end: int | None) -> int | None:
    return None if start is None or end is None else end - start


class Ledger:
    """Orders, fills, positions and money of one journal.

    ``top_of(inst)`` gives the latest (bid, ask) in ticks the read loop has seen, for the
    spread a fill captured; ``instruments`` is filled by the read loop as they load.
    """

    def __init__(self, top_of: Any) -> None:
        self.top_of = top_of
        self.instruments: dict[int, Instrument] = {}
        self.orders: dict[str, _Order] = {}
        self.positions: dict[int, Position] = {}
        self._seen_trades: set[tuple[str, int]] = set()
        self.intents = Rows(
            "seq", "idx", "recv_ns", "type", "inst", "client_id", "side", "price_ticks",
            "qty_lots", "tif", "order_type", "reduce_only", "tag", "detail",
        )  # fmt: skip
        self.order_events = Rows(
            "seq", "recv_ns", "ts_ns", "type", "inst", "client_id", "order_id", "code", "reason"
        )
        self.fills = Rows(
            "seq", "recv_ns", "ts_ns", "inst", "client_id", "order_id", "trade_id", "side",
            "price_ticks", "qty_lots", "notional_minor", "fee_minor", "fee_asset", "is_maker",
            "tag", "slot", "bid_ticks", "ask_ticks", "edge_half_ticks", "spread_capture_half_minor",
            "realized_pnl_minor", "position_lots",
        )  # fmt: skip
        self.positions_rows = Rows(
            "seq", "recv_ns", "inst", "cause", "position_lots", "cost_minor", "realized_minor",
            "fees_minor", "funding_minor",
        )  # fmt: skip
        self.funding = Rows(
            "seq", "recv_ns", "ts_ns", "inst", "position_lots", "mark_e8", "rate_e8",
            "amount_minor", "asset",
        )  # fmt: skip
        self.decisions = Rows("seq", "recv_ns", "category", "action", "code", "inst", "message")
        self.alerts = Rows("seq", "recv_ns", "level", "code", "message")
        self.balances = Rows("seq", "recv_ns", "ts_ns", "reason", "asset", "wallet_minor",
                             "available_minor")  # fmt: skip

    # -- intents ---------------------------------------------------------------------------

    def on_intents(self, seq: int, recv: int, intents: list[Any]) -> None:
        add = self.intents.add
        for idx, it in enumerate(intents):
            t = type(it)
            name = t.__name__
            if t is PlaceOrder:
                tag = getattr(it, "tag", "")
                add(seq, idx, recv, name, it.inst, it.client_id, int(it.side), it.price, it.qty,
                    it.tif.name, it.order_type.name, it.reduce_only, tag, None)  # fmt: skip
                if it.client_id not in self.orders:
                    self.orders[it.client_id] = _Order(seq, recv, it)
            elif t is CancelOrder:
                add(seq, idx, recv, name, it.inst, it.client_id, *[None] * 7, None)
                o = self.orders.get(it.client_id)
                if o is not None and o.cancel_requested_ns is None:
                    o.cancel_requested_ns = recv
            elif t is AmendOrder:
                add(seq, idx, recv, name, it.inst, it.client_id, int(it.side), it.price, it.qty,
                    *[None] * 5)  # fmt: skip
                o = self.orders.get(it.client_id)
                if o is not None:
                    o.amends += 1
            elif t is CancelAllOrders:
                add(seq, idx, recv, name, it.inst, *[None] * 8, it.reason)
            elif t is RecordDecision:
                add(seq, idx, recv, name, it.inst, *[None] * 8, f"{it.category}/{it.action}")
                self.decisions.add(seq, recv, it.category, it.action, it.code, it.inst, it.message)
            elif t is RaiseAlert:
                add(seq, idx, recv, name, None, *[None] * 8, it.code)
                self.alerts.add(seq, recv, it.level.name, it.code, it.message)
            else:  # timers and snapshot requests: kind and one readable detail
                add(seq, idx, recv, name, getattr(it, "inst", None), *[None] * 8,
                    str(msgspec_fields(it)))  # fmt: skip

    # -- order events ----------------------------------------------------------------------

    def on_order_event(self, seq: int, recv: int, ev: Any) -> None:
        t = type(ev)
        o = self.orders.get(ev.client_id)
        code: int | None = getattr(ev, "code", None)
        reason = getattr(ev, "message", None) or getattr(ev, "reason", None)
        self.order_events.add(
            seq, recv, ev.ts_ns, t.__name__, ev.inst, ev.client_id,
            getattr(ev, "order_id", None), code, None if reason is None else str(reason),
        )  # fmt: skip
        if t is OrderFilled:
            self._fill(seq, recv, ev, o)
        if o is None:
            return
        if t is OrderAccepted:
            if o.accepted_ns is None:
                o.accepted_ns = recv
            o.order_id = ev.order_id
        elif t is OrderRejected:
            o.rejected_ns, o.reject_code, o.reject_message = recv, ev.code, ev.message
        elif t is OrderCanceled:
            o.canceled_ns = recv
        elif t is OrderExpired:
            o.expired_ns, o.expire_reason = recv, ev.reason
        elif t is OrderStatusUnknown:
            o.unknown += 1
        elif t is OrderAmended:
            o.price, o.qty = ev.price, ev.qty
        elif t is CancelRejected:
            o.cancel_reject_code = ev.code

    def _fill(self, seq: int, recv: int, ev: OrderFilled, o: _Order | None) -> None:
        key = (ev.client_id, ev.trade_id)
        if o is not None and key in self._seen_trades:
            return  # the engine ignores a repeated fill of a known order; so do we
        self._seen_trades.add(key)
        ins = self.instruments[ev.inst]
        k = ins.minor_per_ticklot
        pos = self.position(ev.inst)
        realized = pos.apply_fill(ev.side, ev.price, ev.qty)
        pos.fees += ev.fee
        top = self.top_of(ev.inst)
        bid = ask = edge = capture = None
        if top is not None and 0 < top[0] < top[1]:
            bid, ask = top
            e = bid + ask - 2 * ev.price
            edge = e if ev.side is Side.BUY else -e
            # in half minor units, so a mid between two ticks stays an exact integer
            capture = edge * ev.qty * k
        tag = o.tag if o is not None else ""
        self.fills.add(
            seq, recv, ev.ts_ns, ev.inst, ev.client_id, ev.order_id, ev.trade_id, int(ev.side),
            ev.price, ev.qty, ev.price * ev.qty * k, ev.fee, ev.fee_asset, ev.is_maker, tag,
            slot_of(tag), bid, ask, edge, capture, realized * k, pos.qty,
        )  # fmt: skip
        self._position_row(seq, recv, ev.inst, "fill")
        if o is not None:
            if o.first_fill_ns is None:
                o.first_fill_ns = recv
                if o.order_id is None:
                    o.order_id = ev.order_id
            o.last_fill_ns = recv
            o.fills += 1
            o.maker_fills += ev.is_maker
            o.filled_lots += ev.qty
            o.notional_ticklots += ev.price * ev.qty
            o.fee_minor += ev.fee

    # -- money -----------------------------------------------------------------------------

    def on_funding(self, seq: int, recv: int, ev: FundingSettled) -> None:
        self.funding.add(seq, recv, ev.ts_ns, ev.inst, ev.position, ev.mark_e8, ev.rate,
                         ev.amount, ev.asset)  # fmt: skip
        self.position(ev.inst).funding += ev.amount
        self._position_row(seq, recv, ev.inst, "funding")

    def on_account(self, seq: int, recv: int, ev: AccountUpdated) -> None:
        for b in ev.balances:
            self.balances.add(seq, recv, ev.ts_ns, ev.reason, b.asset, b.wallet, b.available)

    def position(self, inst: int) -> Position:
        pos = self.positions.get(inst)
        if pos is None:
            pos = self.positions[inst] = Position(inst)
        return pos

    def _position_row(self, seq: int, recv: int, inst: int, cause: str) -> None:
        pos = self.positions[inst]
        k = self.instruments[inst].minor_per_ticklot
        self.positions_rows.add(seq, recv, inst, cause, pos.qty, pos.cost * k,
                                pos.realized * k, pos.fees, pos.funding)  # fmt: skip

    # -- the orders table ------------------------------------------------------------------

    def order_rows(self) -> Rows:
        rows = Rows(
            "client_id", "inst", "tag", "slot", "side", "price_ticks", "qty_lots", "tif",
            "order_type", "reduce_only", "status", "placed_seq", "placed_ns", "accepted_ns",
            "first_fill_ns", "last_fill_ns", "cancel_requested_ns", "canceled_ns",
            "expired_ns", "rejected_ns", "end_ns", "order_id", "reject_code", "reject_message",
            "expire_reason", "cancel_reject_code", "filled_lots", "fills", "maker_fills",
            "avg_fill_price_ticks", "fee_minor", "amends", "status_unknown",
            "ack_latency_ns", "fill_latency_ns", "cancel_latency_ns",
        )  # fmt: skip
        table = []
        add = table.append  # rows as tuples, transposed once: ~30% faster than Rows.add
        for o in self.orders.values():
            avg = o.notional_ticklots / o.filled_lots if o.filled_lots else None
            add((
                o.client_id, o.inst, o.tag, slot_of(o.tag), o.side, o.price, o.qty, o.tif,
                o.order_type, o.reduce_only, o.status, o.placed_seq, o.placed_ns, o.accepted_ns,
                o.first_fill_ns, o.last_fill_ns, o.cancel_requested_ns, o.canceled_ns,
                o.expired_ns, o.rejected_ns, o.end_ns, o.order_id, o.reject_code,
                o.reject_message, o.expire_reason, o.cancel_reject_code, o.filled_lots, o.fills,
                o.maker_fills, avg, o.fee_minor, o.amends, o.unknown,
                _since(o.placed_ns, o.accepted_ns), _since(o.placed_ns, o.first_fill_ns),
                _since(o.cancel_requested_ns, o.canceled_ns),
            ))  # fmt: skip
        if table:
            for col, values in zip(rows.cols.values(), zip(*table)):
                col.extend(values)
        return rows


def msgspec_fields(it: Any) -> dict[str, Any]:
    return {f: getattr(it, f) for f in it.__struct_fields__}
