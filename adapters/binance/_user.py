"""Binance USDⓈ-M user data stream and account/order REST answers (JSON) -> engine events.

Pure: no sockets, no clock. Tested on the real payloads in ``shared/data/binance-fixtures``.

What maps to what (ref/binance.md §4):

=====================================  ==================================================
``ORDER_TRADE_UPDATE`` x=NEW            ``OrderAccepted``
x=TRADE / x=CALCULATED (l > 0)          ``OrderFilled`` (dedupe key: trade id ``t``)
x=CANCELED                              ``OrderCanceled``
x=EXPIRED (X=EXPIRED / EXPIRED_IN_MATCH)``OrderExpired`` with Binance's ``er`` reason
x=AMENDMENT                             ``OrderAmended`` (new ``p`` / ``q``)
``ACCOUNT_UPDATE``                      ``AccountUpdated`` (new totals, not deltas)
m=FUNDING_FEE with a ``P`` row          also ``FundingSettled`` per such row (isolated margin:
                                        the one position that paid), amount = the margin
                                        asset's ``bc``; cross margin sends ``B`` only — no
                                        symbol, so no ``FundingSettled`` (``/fapi/v1/income``
                                        has it per symbol: ``funding_from_income``)
``TRADE_LITE``                          nothing: it has no fee and no cumulative quantity,
                                        and the ``ORDER_TRADE_UPDATE`` of the same trade id
                                        would then be dropped as a duplicate, losing the fee
``listenKeyExpired``                    ``LISTEN_KEY_EXPIRED`` (the client must renew)
=====================================  ==================================================

Messages for symbols we do not trade are skipped and counted (two bots on one account must
not corrupt each other: ref/opensqt.md §7 bug 3). Orders we did not place (``autoclose-``,
``adl_autoclose``, manual orders) still produce fills: the position moved.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Final

import msgspec

from engine import (
    PRICE_E8_SCALE,
    QUOTE_SCALE,
    AccountUpdated,
    BalanceRow,
    Event,
    FundingSettled,
    Instrument,
    InstrumentLoaded,
    OpenOrderRow,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    PositionRow,
    Side,
    TimeInForce,
)
from engine._units import decimal_to_scaled

__all__ = [
    "LISTEN_KEY_EXPIRED",
    "ApiError",
    "OrderInfo",
    "TradeRow",
    "UserParser",
    "parse_error",
]

_MS = 1_000_000
_QUOTE_DECIMALS = len(str(QUOTE_SCALE)) - 1
_E8_DECIMALS = len(str(PRICE_E8_SCALE)) - 1

LISTEN_KEY_EXPIRED: Final = "listenKeyExpired"

_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_TIFS = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    "GTX": TimeInForce.GTX,
    "GTD": TimeInForce.GTC,
    "RPI": TimeInForce.GTX,
}


class _O(msgspec.Struct):
    """``o`` of ORDER_TRADE_UPDATE (only the fields we use; the rest are ignored)."""

    s: str
    c: str
    S: str
    q: str
    p: str
    x: str
    X: str
    i: int
    l: str = "0"  # noqa: E741 - Binance's field name
    z: str = "0"
    L: str = "0"
    T: int = 0
    t: int = 0
    N: str | None = None
    n: str | None = None
    m: bool = False
    er: int | str = 0


class _OrderUpdate(msgspec.Struct):
    o: _O
    E: int = 0
    T: int = 0


class _Bal(msgspec.Struct):
    a: str
    wb: str
    cw: str = ""
    bc: str = "0"  # balance change excluding PnL and commission: the funding, for FUNDING_FEE


class _Pos(msgspec.Struct):
    s: str
    pa: str
    ep: str = "0"
    ps: str = "BOTH"


class _AccBody(msgspec.Struct):
    m: str = ""
    B: list[_Bal] = []
    P: list[_Pos] = []


class _AccountUpdate(msgspec.Struct):
    a: _AccBody
    E: int = 0
    T: int = 0


class _Income(msgspec.Struct):
    """One ``GET /fapi/v1/income`` row."""

    symbol: str = ""
    incomeType: str = ""
    income: str = "0"
    asset: str = ""
    time: int = 0


class _Kind(msgspec.Struct):
    e: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")  # a combined-stream wrapper {"stream": .., "data": ..}


class OrderInfo(msgspec.Struct):
    """An order object of ``POST/GET/DELETE/PUT /fapi/v1/order``, ``openOrders``, batch items."""

    orderId: int
    symbol: str
    status: str
    clientOrderId: str = ""
    side: str = "BUY"
    price: str = "0"
    origQty: str = "0"
    executedQty: str = "0"
    type: str = "LIMIT"
    timeInForce: str = "GTC"
    reduceOnly: bool = False
    updateTime: int = 0
    time: int = 0


class TradeRow(msgspec.Struct):
    """A ``GET /fapi/v1/userTrades`` row."""

    symbol: str
    id: int
    orderId: int
    side: str
    price: str
    qty: str
    commission: str = "0"
    commissionAsset: str = ""
    time: int = 0
    maker: bool = False


class _PositionRisk(msgspec.Struct):
    symbol: str
    positionAmt: str
    entryPrice: str = "0"
    positionSide: str = "BOTH"


class _Balance(msgspec.Struct):
    asset: str
    balance: str = "0"
    walletBalance: str = ""
    availableBalance: str = "0"


class ApiError(msgspec.Struct, frozen=True):
    """Binance's error body ``{"code": -2011, "msg": "Unknown order sent."}``."""

    code: int
    msg: str = ""


_error_decoder = msgspec.json.Decoder(ApiError, strict=False)


def parse_error(body: bytes | str) -> ApiError | None:
    """The error in ``body``, or None if it is not an error body."""
    try:
        return _error_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _fee(text: str | None) -> int:
    return decimal_to_scaled(text, _QUOTE_DECIMALS) if text else 0


class UserParser:
    """User-stream messages and account/order REST answers -> events, for a set of symbols."""

    def __init__(self, instruments: list[InstrumentLoaded] | None = None) -> None:
        self._by_symbol: dict[str, Instrument] = {}
        self._kind = msgspec.json.Decoder(_Kind)
        self._order_update = msgspec.json.Decoder(_OrderUpdate, strict=False)
        self._account_update = msgspec.json.Decoder(_AccountUpdate, strict=False)
        self._order = msgspec.json.Decoder(OrderInfo, strict=False)
        self._orders = msgspec.json.Decoder(list[OrderInfo], strict=False)
        self._trades = msgspec.json.Decoder(list[TradeRow], strict=False)
        self._positions = msgspec.json.Decoder(list[_PositionRisk], strict=False)
        self._balances = msgspec.json.Decoder(list[_Balance], strict=False)
        self._income = msgspec.json.Decoder(list[_Income], strict=False)
        #: messages not turned into events, by kind ("TRADE_LITE", "other_symbol", ...)
        self.skipped: dict[str, int] = {}
        for spec in instruments or ():
            self.add_instrument(spec)

    def add_instrument(self, spec: InstrumentLoaded) -> None:
        self._by_symbol[spec.symbol] = Instrument(spec)

    def instrument(self, symbol: str) -> Instrument | None:
        return self._by_symbol.get(symbol)

    def _skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    # -- user data stream ----------------------------------------------------------------

    def parse(self, raw: bytes | str) -> list[Event] | str:
        """One user-stream message (raw or ``{"stream":..,"data":..}``) -> its events.

        Returns ``LISTEN_KEY_EXPIRED`` for that message; an empty list for anything we do not
        turn into events.
        """
        if isinstance(raw, str):
            raw = raw.encode()
        head = self._kind.decode(raw)
        if head.data:
            raw = bytes(head.data)
            head = self._kind.decode(raw)
        kind = head.e
        if kind == "ORDER_TRADE_UPDATE":
            return self._on_order_update(self._order_update.decode(raw))
        if kind == "ACCOUNT_UPDATE":
            msg = self._account_update.decode(raw)
            ev = self._on_account_update(msg)
            out: list[Event] = [ev] if ev is not None else []
            if msg.a.m == "FUNDING_FEE":
                out += self._funding(msg)
            return out
        if kind == "listenKeyExpired":
            return LISTEN_KEY_EXPIRED
        self._skip(kind or "no_event_type")
        return []

    def _on_order_update(self, msg: _OrderUpdate) -> list[Event]:
        o = msg.o
        ins = self._by_symbol.get(o.s)
        if ins is None:
            self._skip("other_symbol")
            return []
        inst = ins.inst
        ts = (o.T or msg.T or msg.E) * _MS
        x = o.x
        if x == "NEW":
            return [OrderAccepted(inst, o.c, o.i, ts)]
        if x in ("TRADE", "CALCULATED"):
            qty = ins.qty_scale.to_units(o.l)
            if qty == 0:
                self._skip("zero_fill")
                return []
            return [
                OrderFilled(
                    inst,
                    o.c,
                    o.i,
                    o.t,
                    _SIDES[o.S],
                    ins.price_scale.to_units(o.L),
                    qty,
                    ins.qty_scale.to_units(o.z),
                    ins.qty_scale.to_units(o.q),
                    _fee(o.n),
                    o.N or "",
                    o.m,
                    ts,
                )
            ]
        if x == "CANCELED":
            return [OrderCanceled(inst, o.c, o.i, ts)]
        if x == "EXPIRED":
            try:
                reason = int(o.er)
            except ValueError:
                reason = 0
            if o.X == "EXPIRED_IN_MATCH" and not reason:
                reason = 1
            return [OrderExpired(inst, o.c, o.i, ts, reason)]
        if x == "AMENDMENT":
            return [
                OrderAmended(
                    inst,
                    o.c,
                    o.i,
                    ins.price_scale.to_units(o.p),
                    ins.qty_scale.to_units(o.q),
                    ts,
                )
            ]
        self._skip("x=" + x)
        return []

    def _on_account_update(self, msg: _AccountUpdate) -> AccountUpdated | None:
        balances = [_balance_row(b.a, b.wb, b.cw or b.wb) for b in msg.a.B]
        positions = []
        for p in msg.a.P:
            ins = self._by_symbol.get(p.s)
            if ins is None or p.ps not in ("BOTH", ""):
                continue
            positions.append(_position_row(ins, p.pa, p.ep))
        return AccountUpdated((msg.T or msg.E) * _MS, msg.a.m, balances, positions)

    def _funding(self, msg: _AccountUpdate) -> list[Event]:
        """``FundingSettled`` for each position row of a FUNDING_FEE update whose symbol is ours.

        Binance (ref/binance.md §4.4): cross positions settle with ``B`` only (the symbol is
        unknown: nothing here, the ``AccountUpdated`` still carries the new balance); an
        isolated position comes with its ``P`` row, and the asset's ``bc`` is what it paid.
        A row is credited only when it alone can explain that ``bc`` (one row per margin
        asset; a symbol we do not trade could share it): never a guess.
        """
        if not msg.a.P:
            self._skip("funding_cross")
            return []
        change = {b.a: decimal_to_scaled(b.bc, _QUOTE_DECIMALS) for b in msg.a.B if b.bc}
        ts = (msg.T or msg.E) * _MS
        out: list[Event] = []
        for p in msg.a.P:
            ins = self._by_symbol.get(p.s)
            if ins is None or p.ps not in ("BOTH", ""):
                self._skip("other_symbol")
                continue
            asset = ins.spec.margin_asset
            amount = change.get(asset)
            sharing = [
                q
                for q in msg.a.P
                if q is not p
                and ((o := self._by_symbol.get(q.s)) is None or o.spec.margin_asset == asset)
            ]
            if amount is None or sharing:
                self._skip("funding_unattributed")
                continue
            qty = _position_row(ins, p.pa, p.ep).qty
            out.append(FundingSettled(ins.inst, ts, qty, 0, 0, amount, asset))
        return out

    def funding_from_income(self, body: bytes | str) -> list[FundingSettled]:
        """``GET /fapi/v1/income?incomeType=FUNDING_FEE`` rows of our symbols -> events.

        The income row names the symbol, so cross-margin funding can be attributed; position,
        mark and rate are not in it (0 = unknown).
        """
        out = []
        for r in self._income.decode(body):
            ins = self._by_symbol.get(r.symbol)
            if r.incomeType != "FUNDING_FEE" or ins is None:
                continue
            amount = decimal_to_scaled(r.income, _QUOTE_DECIMALS)
            out.append(FundingSettled(ins.inst, r.time * _MS, 0, 0, 0, amount, r.asset))
        return out

    # -- REST answers --------------------------------------------------------------------

    def order(self, body: bytes | str) -> OrderInfo:
        return self._order.decode(body)

    def orders(self, body: bytes | str) -> list[OrderInfo]:
        return self._orders.decode(body)

    def batch(self, body: bytes | str) -> list[OrderInfo | ApiError]:
        """``batchOrders`` answer: per item an order or an error, in request order."""
        items = msgspec.json.decode(body, type=list[msgspec.Raw])
        out: list[OrderInfo | ApiError] = []
        for raw in items:
            try:
                out.append(self._order.decode(raw))
            except msgspec.ValidationError:
                err = parse_error(raw)
                out.append(err if err is not None else ApiError(-1000, "unreadable batch item"))
        return out

    def trades(self, body: bytes | str) -> list[TradeRow]:
        return self._trades.decode(body)

    def order_events(self, info: OrderInfo, ts_ns: int = 0) -> list[Event]:
        """What an order object says about the order's existence and end (not its fills).

        A NEW/PARTIALLY_FILLED/FILLED order was accepted; CANCELED/EXPIRED ones also ended.
        Fills are facts of their own (user stream, or ``fills_from_trades`` in catch-up).
        """
        ins = self._by_symbol.get(info.symbol)
        if ins is None:
            return []
        inst, cid = ins.inst, info.clientOrderId
        ts = ts_ns or (info.updateTime or info.time) * _MS
        status = info.status
        if status == "REJECTED":
            return [OrderRejected(inst, cid, -2010, "rejected", ts)]
        out: list[Event] = [OrderAccepted(inst, cid, info.orderId, ts)]
        if status == "CANCELED":
            out.append(OrderCanceled(inst, cid, info.orderId, ts))
        elif status in ("EXPIRED", "EXPIRED_IN_MATCH"):
            out.append(OrderExpired(inst, cid, info.orderId, ts, 1 if "MATCH" in status else 0))
        return out

    def amended(self, info: OrderInfo, ts_ns: int = 0) -> Event | None:
        ins = self._by_symbol.get(info.symbol)
        if ins is None:
            return None
        ts = ts_ns or info.updateTime * _MS
        if info.status == "CANCELED":  # an amend can cancel (qty <= executed, GTX crossing)
            return OrderCanceled(ins.inst, info.clientOrderId, info.orderId, ts, "amend")
        return OrderAmended(
            ins.inst,
            info.clientOrderId,
            info.orderId,
            ins.price_scale.to_units(info.price),
            ins.qty_scale.to_units(info.origQty),
            ts,
        )

    def fills_from_trades(
        self, info: OrderInfo, trades: list[TradeRow], known: set[int] | None = None
    ) -> list[OrderFilled]:
        """The fills of order ``info`` from its ``userTrades`` rows, minus trade ids ``known``."""
        ins = self._by_symbol.get(info.symbol)
        if ins is None:
            return []
        known = known or set()
        qty_of = ins.qty_scale.to_units
        order_qty = qty_of(info.origQty)
        cum = 0
        out = []
        for t in sorted(trades, key=lambda r: r.id):
            if t.orderId != info.orderId:
                continue
            q = qty_of(t.qty)
            cum += q
            if t.id in known:
                continue
            out.append(
                OrderFilled(
                    ins.inst,
                    info.clientOrderId,
                    info.orderId,
                    t.id,
                    _SIDES[t.side],
                    ins.price_scale.to_units(t.price),
                    q,
                    cum,
                    order_qty,
                    _fee(t.commission),
                    t.commissionAsset,
                    t.maker,
                    t.time * _MS,
                )
            )
        return out

    def open_order_rows(self, infos: list[OrderInfo]) -> list[OpenOrderRow]:
        rows = []
        for o in infos:
            ins = self._by_symbol.get(o.symbol)
            if ins is None or o.type != "LIMIT":
                continue
            rows.append(
                OpenOrderRow(
                    ins.inst,
                    o.clientOrderId,
                    o.orderId,
                    _SIDES[o.side],
                    ins.price_scale.to_units(o.price),
                    ins.qty_scale.to_units(o.origQty),
                    ins.qty_scale.to_units(o.executedQty),
                    _TIFS.get(o.timeInForce, TimeInForce.GTC),
                    o.reduceOnly,
                )
            )
        return rows

    def position_rows(self, body: bytes | str) -> list[PositionRow]:
        rows = []
        for p in self._positions.decode(body):
            ins = self._by_symbol.get(p.symbol)
            if ins is None or p.positionSide not in ("BOTH", ""):
                continue
            rows.append(_position_row(ins, p.positionAmt, p.entryPrice))
        return rows

    def balance_rows(self, body: bytes | str) -> list[BalanceRow]:
        return [
            _balance_row(b.asset, b.walletBalance or b.balance, b.availableBalance)
            for b in self._balances.decode(body)
        ]


def _balance_row(asset: str, wallet: str, available: str) -> BalanceRow:
    return BalanceRow(
        asset,
        decimal_to_scaled(wallet, _QUOTE_DECIMALS),
        decimal_to_scaled(available, _QUOTE_DECIMALS),
    )


def _position_row(ins: Instrument, amount: str, entry: str) -> PositionRow:
    qty = decimal_to_scaled(amount, ins.qty_scale.decimals) // ins.qty_scale.unit
    return PositionRow(ins.inst, qty, _e8_floor(entry or "0"))


def _e8_floor(text: str) -> int:
    """An entry price with Binance's many decimals, as PRICE_E8_SCALE units (floored)."""
    return int((Decimal(text) * PRICE_E8_SCALE).to_integral_value(rounding=ROUND_FLOOR))
