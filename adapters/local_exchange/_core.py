"""The local exchange's core: Binance requests in, Binance answers and stream messages out.

Theory of operation
-------------------
Sans-IO, like h11: no sockets, no clock. Every entry point takes the exchange time ``now``
(ns) and returns what to answer; stream messages are appended to ``user_out`` (user data
stream payloads) and ``market_out`` ((symbol, stream kind, payload)) for the server to
deliver. The matching is *not* here: requests become engine intents (``PlaceOrder``,
``CancelOrder``, ``AmendOrder``, ``CancelAllOrders``) for the one matching model of the
project, ``replay.sim.SimExchange``, and its answers (``OrderAccepted``, ``OrderFilled``,
``AccountUpdated``, ...) become Binance JSON. This module only keeps what Binance shows and
the simulator does not: order records for queries (ids, times, status, average price),
the account's trades, listenKey, countdownCancelAll timers, leverage settings.

Checks happen in Binance's order: route, API key (-2014/-2015), rate limits (429 -1003 /
-1015, then 418), signature (-1022), timestamp window (-1021), parameters (-1102, -1100,
-1116, ...), then the matching engine (filters, margin, -2011, -5022, ...). The simulator's
own rate limiter is switched off: the server counts Binance's real per-endpoint weights.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from engine import (
    PRICE_E8_SCALE,
    QUOTE_SCALE,
    AccountUpdated,
    AmendOrder,
    AmendRejected,
    BookDeltaReceived,
    CancelAllOrders,
    CancelOrder,
    CancelRejected,
    Event,
    FundingSettled,
    Instrument,
    InstrumentLoaded,
    Intent,
    KlineUpdated,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Position,
    Side,
    TimeInForce,
    TopOfBookUpdated,
    TradePrinted,
)
from engine._context import CLIENT_ID_RE
from engine._units import scaled_to_text
from replay.sim import RateLimiter, Reject, SimConfig, SimExchange, parse_price, parse_qty

from . import _wire as wire
from ._auth import AuthError, check_signed, check_timestamp, sign, ws_payload
from ._faults import Faults, OrderFault

__all__ = ["ApiError", "LocalExchange", "OrderRec", "Response"]

_MS = 1_000_000
_S = 1_000_000_000

_MARGIN_MSG = "The operation of cancel all open order is done."


class ApiError(Exception):
    """A Binance error answer ``{"code": ..., "msg": ...}`` with its HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: never answer (the "timeout" fault): the server keeps the connection silent
    hang: bool = False


def _missing(name: str) -> ApiError:
    return ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_SIDE_TEXT = {Side.BUY: "BUY", Side.SELL: "SELL"}
_TIFS = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    "GTX": TimeInForce.GTX,
}
_CONDITIONAL = {
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
}


class OrderRec:
    """One order as Binance shows it (the simulator keeps the matching state)."""

    __slots__ = (
        "ack",
        "client_id",
        "cum_quote",
        "executed",
        "ins",
        "order_id",
        "order_type",
        "price",
        "qty",
        "reduce_only",
        "side",
        "status",
        "stp",
        "tif",
        "time_ms",
        "update_ms",
    )

    def __init__(
        self,
        ins: Instrument,
        client_id: str,
        side: Side,
        order_type: str,
        tif: str,
        price: int,
        qty: int,
        reduce_only: bool,
        stp: str,
        now_ms: int,
    ) -> None:
        self.ins = ins
        self.client_id = client_id
        self.order_id = 0
        self.side = side
        self.order_type = order_type
        self.tif = tif
        self.price = price
        self.qty = qty
        self.reduce_only = reduce_only
        self.stp = stp
        self.executed = 0
        self.cum_quote = 0  # minor units
        self.status = "NEW"
        self.time_ms = now_ms
        self.update_ms = now_ms
        self.ack: dict[str, Any] = {}

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def quote_text(self, minor: int) -> str:
        d = min(8, self.ins.price_scale.decimals + self.ins.qty_scale.decimals)
        return scaled_to_text(minor // 10 ** (8 - d), d)

    def avg_text(self) -> str:
        d = self.ins.price_scale.decimals + 3
        if not self.executed:
            return scaled_to_text(0, d)
        qty = self.ins.qty_scale.to_decimal(self.executed)
        avg = Decimal(self.cum_quote) / QUOTE_SCALE / qty
        return f"{avg:.{d}f}"

    def to_json(self, *, query: bool = False) -> dict[str, Any]:
        ins = self.ins
        out: dict[str, Any] = {
            "orderId": self.order_id,
            "symbol": ins.symbol,
            "status": self.status,
            "clientOrderId": self.client_id,
            "price": ins.price_text(self.price),
            "avgPrice": self.avg_text(),
            "origQty": ins.qty_text(self.qty),
            "executedQty": ins.qty_text(self.executed),
        }
        if not query:
            out["cumQty"] = ins.qty_text(self.executed)
        out.update(
            {
                "cumQuote": self.quote_text(self.cum_quote),
                "timeInForce": self.tif,
                "type": self.order_type,
                "reduceOnly": self.reduce_only,
                "closePosition": False,
                "side": _SIDE_TEXT[self.side],
                "positionSide": "BOTH",
                "stopPrice": ins.price_text(0),
                "workingType": "CONTRACT_PRICE",
                "priceProtect": False,
                "origType": self.order_type,
                "priceMatch": "NONE",
                "selfTradePreventionMode": self.stp,
                "goodTillDate": 0,
            }
        )
        if query:
            out["time"] = self.time_ms
        out["updateTime"] = self.update_ms
        return out


class TradeRec(msgspec.Struct, array_like=True, gc=False):
    inst: int
    trade_id: int
    order_id: int
    side: Side
    price: int
    qty: int
    realized: int  # minor units
    fee: int
    fee_asset: str
    time_ms: int
    maker: bool


# (method, path) -> (handler name, security, weight, orders)
# security: "NONE", "KEY" (API key only), "SIGNED"
_ROUTES: dict[tuple[str, str], tuple[str, str, int, int]] = {
    ("GET", "/fapi/v1/ping"): ("ping", "NONE", 1, 0),
    ("GET", "/fapi/v1/time"): ("time", "NONE", 1, 0),
    ("GET", "/fapi/v1/exchangeInfo"): ("exchange_info", "NONE", 1, 0),
    ("GET", "/fapi/v1/depth"): ("depth", "NONE", -1, 0),
    ("GET", "/fapi/v1/ticker/bookTicker"): ("book_ticker", "NONE", 2, 0),
    ("GET", "/fapi/v1/premiumIndex"): ("premium_index", "NONE", 1, 0),
    ("POST", "/fapi/v1/order"): ("new_order", "SIGNED", 0, 1),
    ("PUT", "/fapi/v1/order"): ("amend_order", "SIGNED", 0, 1),
    ("DELETE", "/fapi/v1/order"): ("cancel_order", "SIGNED", 1, 0),
    ("GET", "/fapi/v1/order"): ("query_order", "SIGNED", 1, 0),
    ("GET", "/fapi/v1/openOrder"): ("open_order", "SIGNED", 1, 0),
    ("GET", "/fapi/v1/openOrders"): ("open_orders", "SIGNED", -1, 0),
    ("GET", "/fapi/v1/allOrders"): ("all_orders", "SIGNED", 5, 0),
    ("POST", "/fapi/v1/batchOrders"): ("batch_new", "SIGNED", 5, 5),
    ("PUT", "/fapi/v1/batchOrders"): ("batch_amend", "SIGNED", 5, 5),
    ("DELETE", "/fapi/v1/batchOrders"): ("batch_cancel", "SIGNED", 1, 0),
    ("DELETE", "/fapi/v1/allOpenOrders"): ("cancel_all", "SIGNED", 1, 0),
    ("POST", "/fapi/v1/countdownCancelAll"): ("countdown", "SIGNED", 10, 0),
    ("GET", "/fapi/v1/userTrades"): ("user_trades", "SIGNED", 5, 0),
    ("GET", "/fapi/v1/commissionRate"): ("commission_rate", "SIGNED", 20, 0),
    ("GET", "/fapi/v2/positionRisk"): ("position_risk_v2", "SIGNED", 5, 0),
    ("GET", "/fapi/v3/positionRisk"): ("position_risk_v3", "SIGNED", 5, 0),
    ("GET", "/fapi/v2/account"): ("account_v2", "SIGNED", 5, 0),
    ("GET", "/fapi/v3/account"): ("account_v3", "SIGNED", 5, 0),
    ("GET", "/fapi/v2/balance"): ("balance", "SIGNED", 5, 0),
    ("GET", "/fapi/v3/balance"): ("balance", "SIGNED", 5, 0),
    ("GET", "/fapi/v1/accountConfig"): ("account_config", "SIGNED", 5, 0),
    ("GET", "/fapi/v1/symbolConfig"): ("symbol_config", "SIGNED", 5, 0),
    ("POST", "/fapi/v1/leverage"): ("leverage", "SIGNED", 1, 0),
    ("POST", "/fapi/v1/marginType"): ("margin_type", "SIGNED", 1, 0),
    ("GET", "/fapi/v1/positionSide/dual"): ("get_dual", "SIGNED", 30, 0),
    ("POST", "/fapi/v1/positionSide/dual"): ("set_dual", "SIGNED", 1, 0),
    ("GET", "/fapi/v1/rateLimit/order"): ("rate_limit_order", "SIGNED", 1, 0),
    ("POST", "/fapi/v1/listenKey"): ("listen_key_new", "KEY", 1, 0),
    ("PUT", "/fapi/v1/listenKey"): ("listen_key_keepalive", "KEY", 1, 0),
    ("DELETE", "/fapi/v1/listenKey"): ("listen_key_close", "KEY", 1, 0),
}
_ORDER_ENDPOINTS = {"new_order", "amend_order", "cancel_order", "batch_new", "batch_amend"}
#: the order endpoints whose fault can leave an order placed (or a cancel done)
_WS_METHODS: dict[str, tuple[str, str, int, int]] = {
    "order.place": ("new_order", "SIGNED", 0, 1),
    "order.modify": ("amend_order", "SIGNED", 1, 1),
    "order.cancel": ("cancel_order", "SIGNED", 1, 0),
    "order.status": ("query_order", "SIGNED", 1, 0),
    "account.position": ("position_risk_v3", "SIGNED", 5, 0),
    "v2/account.position": ("position_risk_v3", "SIGNED", 5, 0),
    "v2/account.balance": ("balance", "SIGNED", 5, 0),
    "v2/account.status": ("account_v3", "SIGNED", 5, 0),
    "userDataStream.start": ("listen_key_new", "KEY", 1, 0),
    "userDataStream.ping": ("listen_key_keepalive", "KEY", 1, 0),
    "userDataStream.stop": ("listen_key_close", "KEY", 1, 0),
    "depth": ("depth", "NONE", -1, 0),
    "ticker.book": ("book_ticker", "NONE", 2, 0),
}


def _depth_weight(limit: int) -> int:
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


class LocalExchange:
    """Binance USDⓈ-M semantics over ``SimExchange``. See the module docstring."""

    def __init__(
        self,
        instruments: list[InstrumentLoaded],
        sim_config: SimConfig,
        *,
        api_key: str,
        api_secret: str,
        faults: Faults | None = None,
        listen_key_ttl_s: float = 3600.0,
        seed: int = 1,
        journal: Callable[[int, Event | None, Intent | None], None] | None = None,
    ) -> None:
        limits = sim_config.rate_limits
        inner = msgspec.structs.replace(
            sim_config, rate_limits=msgspec.structs.replace(limits, enabled=False)
        )
        self.sim = SimExchange(inner, instruments)
        self.limiter = RateLimiter(limits)
        self.config = sim_config
        self._key = api_key
        self._secret = api_secret
        self.faults = faults or Faults(seed=seed)
        self._journal = journal
        self.rng = random.Random(seed)
        self.by_symbol: dict[str, Instrument] = {}
        self.by_inst: dict[int, Instrument] = {}
        for spec in instruments:
            self._add(spec)
        self.orders: dict[int, OrderRec] = {}
        self.by_cid: dict[str, int] = {}  # latest order id per client id
        self._pending: dict[str, OrderRec] = {}
        self.trades: list[TradeRec] = []
        self.shadow: dict[int, Position] = {s.inst: Position(s.inst) for s in instruments}
        self.fees_paid: dict[int, int] = {}
        self.countdowns: dict[str, tuple[int, int]] = {}  # symbol -> (deadline ns, ms)
        self.leverage: dict[str, int] = {}
        self.margin_type: dict[str, str] = {}
        self.listen_key = ""
        self.listen_key_expiry_ns = 0
        self.listen_key_ttl_ns = int(listen_key_ttl_s * _S)
        self.next_client_seq = 1
        self.user_out: list[dict[str, Any]] = []
        self.market_out: list[tuple[str, str, dict[str, Any]]] = []
        self.klines: dict[int, dict[str, wire.Kline]] = {}
        self._mark3_ms: dict[int, int] = {}
        self.stats: dict[str, int] = {"requests": 0, "errors": 0, "market_events": 0}

    def _add(self, spec: InstrumentLoaded) -> None:
        ins = Instrument(spec)
        self.by_symbol[spec.symbol] = ins
        self.by_inst[spec.inst] = ins

    # ------------------------------------------------------------------------------------
    # market data

    def want_kline(self, symbol: str, interval: str) -> bool:
        ins = self.by_symbol.get(symbol.upper())
        if ins is None or not wire.Kline.valid(interval):
            return False
        self.klines.setdefault(ins.inst, {}).setdefault(interval, wire.Kline(interval))
        return True

    def on_market(self, now: int, ev: Event) -> None:
        """The market moved (``ev`` already stamped in exchange time): match, publish."""
        self.stats["market_events"] += 1
        if self._journal is not None:
            self._journal(now, ev, None)
        if type(ev) is InstrumentLoaded and ev.symbol not in self.by_symbol:
            self._add(ev)
            self.shadow[ev.inst] = Position(ev.inst)
        answers = self.sim.apply_market(now, ev)
        kind = type(ev)
        out = self.market_out
        if kind is TopOfBookUpdated:
            ins = self.by_inst[ev.inst]
            out.append((ins.symbol.lower(), "bookTicker", wire.book_ticker(ins, ev)))
        elif kind is BookDeltaReceived:
            if not self.faults.take_depth_gap():
                ins = self.by_inst[ev.inst]
                out.append((ins.symbol.lower(), "depth", wire.depth_update(ins, ev)))
        elif kind is TradePrinted:
            ins = self.by_inst[ev.inst]
            sym = ins.symbol.lower()
            trade, agg = wire.trade_messages(ins, ev)
            out.append((sym, "trade", trade))
            out.append((sym, "aggTrade", agg))
            for interval, k in self.klines.get(ev.inst, {}).items():
                for msg in k.on_trade(ins, ev):
                    out.append((sym, "kline_" + interval, msg))
        elif kind is MarkPriceUpdated:
            ins = self.by_inst[ev.inst]
            sym = ins.symbol.lower()
            msg = wire.mark_price(ins, ev)
            out.append((sym, "markPrice@1s", msg))
            ms = ev.ts_ns // _MS
            if ms - self._mark3_ms.get(ev.inst, -(10**15)) >= 3000:
                self._mark3_ms[ev.inst] = ms
                out.append((sym, "markPrice", msg))
        elif kind is KlineUpdated:
            ins = self.by_inst[ev.inst]
            out.append((ins.symbol.lower(), "kline_" + ev.interval, wire.kline_from_event(ins, ev)))
        if answers:
            self._absorb(now, answers)

    def on_timer(self, now: int) -> None:
        """Countdown (dead-man switch) and listenKey expiry; call every ~10 ms."""
        if self.countdowns:
            for symbol, (deadline, _) in list(self.countdowns.items()):
                if now >= deadline:
                    del self.countdowns[symbol]
                    ins = self.by_symbol[symbol]
                    self._submit(now, CancelAllOrders(ins.inst, "countdownCancelAll"))
        if self.listen_key and now >= self.listen_key_expiry_ns:
            self.expire_listen_key(now)

    def expire_listen_key(self, now: int) -> None:
        if not self.listen_key:
            return
        self.user_out.append(
            {"e": "listenKeyExpired", "E": now // _MS, "listenKey": self.listen_key}
        )
        self.listen_key = ""

    # ------------------------------------------------------------------------------------
    # requests

    def _submit(self, now: int, intent: Intent) -> list[Event]:
        if self._journal is not None:
            self._journal(now, None, intent)
        answers = self.sim.submit(now, intent)
        self._absorb(now, answers)
        return answers

    def _charge(self, now: int, weight: int, orders: int) -> None:
        if self.faults.take_429():
            raise Reject(
                -1003,
                "Too many requests; current limit of IP(127.0.0.1) request weight per minute is "
                f"{self.config.rate_limits.weight_per_minute}. Please use WebSocket Streams for "
                "live updates to avoid polling the API.",
                429,
            )
        if self.faults.ban_until_ns > now:
            until = self.faults.ban_until_ns // _MS
            raise Reject(
                -1003,
                f"Way too many requests; IP(127.0.0.1) banned until {until}. Please use the "
                "websocket for live updates to avoid bans.",
                418,
            )
        # a batch counts 5 on the 10 s ORDERS window, 1 on the 1 min one (ref/binance.md §6)
        self.limiter.charge(now, weight, 1 if orders else 0)
        if orders > 1:
            self.limiter.orders_10s += orders - 1

    def _retry_after(self, now: int, r: Reject) -> str:
        if r.http_status == 418:
            until = max(self.limiter.banned_until, self.faults.ban_until_ns)
            return str(max(1, -(-(until - now) // _S)))
        span = 10 if r.code == -1015 and "10 SECONDS" in r.message else 60
        return str(max(1, span - (now // _S) % span))

    def rate_headers(self, *, orders: bool) -> list[tuple[str, str]]:
        h = [("X-MBX-USED-WEIGHT-1M", str(self.limiter.weight_1m))]
        if orders:
            h.append(("X-MBX-ORDER-COUNT-10S", str(self.limiter.orders_10s)))
            h.append(("X-MBX-ORDER-COUNT-1M", str(self.limiter.orders_1m)))
        return h

    def rest(
        self,
        method: str,
        path: str,
        query: bytes,
        body: bytes,
        api_key: str | None,
        now: int,
    ) -> Response:
        """One HTTP request -> its response (status, JSON body, Binance headers)."""
        self.stats["requests"] += 1
        route = _ROUTES.get((method, path))
        if route is None:
            self.stats["errors"] += 1
            return Response(
                404, wire.encode({"code": -5000, "msg": f"Path {path}, Method {method} is invalid"})
            )
        name, security, weight, orders = route
        try:
            params = _params(query, body)
            if weight < 0:
                weight = self._weight(name, params)
            self._check_key(security, api_key)
            try:
                self._charge(now, weight, orders)
            except Reject as r:
                self.stats["errors"] += 1
                return Response(
                    r.http_status,
                    wire.encode({"code": r.code, "msg": r.message}),
                    [*self.rate_headers(orders=False), ("Retry-After", self._retry_after(now, r))],
                )
            if security == "SIGNED":
                check_signed(self._secret, query, body)
                check_timestamp(params, now // _MS)
            fault = self.faults.next_order_fault() if name in _ORDER_ENDPOINTS else None
            if fault is not None:
                return self._faulted(fault, name, params, now)
            result = getattr(self, "_h_" + name)(params, now)
            status = 200
        except (ApiError, AuthError) as e:
            self.stats["errors"] += 1
            result = {"code": e.code, "msg": e.msg}
            status = e.status
        except Reject as r:
            self.stats["errors"] += 1
            result = {"code": r.code, "msg": r.message}
            status = r.http_status
        return Response(status, wire.encode(result), self.rate_headers(orders=orders > 0))

    def _faulted(self, fault: OrderFault, name: str, params: dict[str, str], now: int) -> Response:
        if fault.executes:
            try:
                getattr(self, "_h_" + name)(params, now)
            except (ApiError, Reject):
                pass
        if fault.mode == "timeout":
            return Response(0, b"", hang=True)
        code, msg, status = {
            "unknown": (-1000, "Unknown error, please check your request or try again later.", 503),
            "error500": (-1000, "Request occur unknown error.", 500),
            "unavailable": (-1000, "Service Unavailable.", 503),
            "internal": (
                -1001,
                "Internal error; unable to process your request. Please try again.",
                503,
            ),
            "throttled": (
                -1008,
                "Request throttled by system-level protection. Reduce-only/close-position "
                "orders are exempt. Please try again.",
                503,
            ),
        }[fault.mode]
        return Response(status, wire.encode({"code": code, "msg": msg}))

    def _weight(self, name: str, params: dict[str, str]) -> int:
        if name == "depth":
            return _depth_weight(_int(params, "limit", 500))
        if name == "open_orders":
            return 1 if params.get("symbol") else 40
        return 1

    def _check_key(self, security: str, api_key: str | None) -> None:
        if security == "NONE":
            return
        if not api_key:
            raise ApiError(-2014, "API-key format invalid.", 401)
        if api_key != self._key:
            raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)

    # -- WebSocket API -------------------------------------------------------------------

    def ws_api(self, request: dict[str, Any], now: int) -> dict[str, Any] | None:
        """One ws-fapi request -> its response (None: the "timeout" fault, no answer)."""
        self.stats["requests"] += 1
        rid = request.get("id")
        method = request.get("method")
        raw = request.get("params") or {}
        route = _WS_METHODS.get(str(method))
        if route is None or not isinstance(raw, dict):
            self.stats["errors"] += 1
            return {
                "id": rid,
                "status": 400,
                "error": {"code": -1002 if route is None else -1102, "msg": "Invalid request."},
                "rateLimits": self._ws_limits(),
            }
        name, security, weight, orders = route
        params = {k: _ws_text(v) for k, v in raw.items() if v is not None}
        try:
            if weight < 0:
                weight = self._weight(name, params)
            self._check_key(security, params.get("apiKey"))
            try:
                self._charge(now, weight, orders)
            except Reject as r:
                raise ApiError(r.code, r.message, r.http_status) from None
            if security == "SIGNED":
                sig = params.get("signature")
                if not sig:
                    raise _missing("signature")
                if sign(self._secret, ws_payload(raw)) != sig.lower():
                    raise ApiError(-1022, "Signature for this request is not valid.")
                check_timestamp(params, now // _MS)
            fault = self.faults.next_order_fault() if name in _ORDER_ENDPOINTS else None
            if fault is not None:
                r = self._faulted(fault, name, params, now)
                if r.hang:
                    return None
                err = msgspec.json.decode(r.body)
                return {
                    "id": rid,
                    "status": r.status,
                    "error": err,
                    "rateLimits": self._ws_limits(),
                }
            result = getattr(self, "_h_" + name)(params, now)
        except (ApiError, AuthError) as e:
            self.stats["errors"] += 1
            return {
                "id": rid,
                "status": e.status,
                "error": {"code": e.code, "msg": e.msg},
                "rateLimits": self._ws_limits(),
            }
        except Reject as r:
            self.stats["errors"] += 1
            return {
                "id": rid,
                "status": r.http_status,
                "error": {"code": r.code, "msg": r.message},
                "rateLimits": self._ws_limits(),
            }
        return {"id": rid, "status": 200, "result": result, "rateLimits": self._ws_limits()}

    def _ws_limits(self) -> list[dict[str, Any]]:
        cfg = self.config.rate_limits
        lim = self.limiter
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": cfg.weight_per_minute,
                "count": lim.weight_1m,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "SECOND",
                "intervalNum": 10,
                "limit": cfg.orders_per_10s,
                "count": lim.orders_10s,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": cfg.orders_per_minute,
                "count": lim.orders_1m,
            },
        ]

    # ------------------------------------------------------------------------------------
    # the matching model's answers -> order records and user-stream messages

    def _absorb(self, now: int, answers: list[Event]) -> None:
        journal = self._journal
        for ev in answers:
            if journal is not None:
                journal(now, ev, None)
            kind = type(ev)
            if kind is OrderFilled:
                self._on_fill(now, ev)
            elif kind is AccountUpdated:
                self._on_account(now, ev)
            elif kind is OrderAccepted:
                rec = self._pending.pop(ev.client_id, None)
                if rec is None:
                    continue
                rec.order_id = ev.order_id
                rec.update_ms = now // _MS
                self.orders[ev.order_id] = rec
                self.by_cid[ev.client_id] = ev.order_id
                rec.ack = rec.to_json()
                self._order_update(now, rec, "NEW")
            elif kind is OrderCanceled:
                rec = self.orders.get(ev.order_id)
                if rec is not None:
                    rec.status = "CANCELED"
                    rec.update_ms = now // _MS
                    self._order_update(now, rec, "CANCELED")
            elif kind is OrderExpired:
                rec = self.orders.get(ev.order_id)
                if rec is not None:
                    rec.status = "EXPIRED"
                    rec.update_ms = now // _MS
                    self._order_update(now, rec, "EXPIRED", expiry_reason=ev.reason)
            elif kind is OrderAmended:
                rec = self.orders.get(ev.order_id)
                if rec is not None:
                    rec.price, rec.qty = ev.price, ev.qty
                    rec.update_ms = now // _MS
                    self._order_update(now, rec, "AMENDMENT")
            elif kind is FundingSettled:
                pass  # the AccountUpdated(FUNDING_FEE) that follows carries it

    def _on_fill(self, now: int, ev: OrderFilled) -> None:
        rec = self.orders.get(ev.order_id)
        if rec is None:
            return
        ins = rec.ins
        realized = (
            self.shadow[ev.inst].apply_fill(ev.side, ev.price, ev.qty) * ins.minor_per_ticklot
        )
        rec.executed = ev.cum_qty
        rec.cum_quote += ins.notional(ev.price, ev.qty)
        rec.status = "FILLED" if ev.cum_qty >= ev.order_qty else "PARTIALLY_FILLED"
        rec.update_ms = now // _MS
        self.fees_paid[ev.inst] = self.fees_paid.get(ev.inst, 0) + ev.fee
        self.trades.append(
            TradeRec(
                ev.inst,
                ev.trade_id,
                ev.order_id,
                ev.side,
                ev.price,
                ev.qty,
                realized,
                ev.fee,
                ev.fee_asset,
                now // _MS,
                ev.is_maker,
            )
        )
        ms = now // _MS
        self.user_out.append(
            {
                "e": "TRADE_LITE",
                "E": ms,
                "T": ms,
                "s": ins.symbol,
                "q": ins.qty_text(rec.qty),
                "p": ins.price_text(rec.price),
                "m": ev.is_maker,
                "c": rec.client_id,
                "S": _SIDE_TEXT[rec.side],
                "L": ins.price_text(ev.price),
                "l": ins.qty_text(ev.qty),
                "t": ev.trade_id,
                "i": rec.order_id,
            }
        )
        self._order_update(now, rec, "TRADE", fill=ev, realized=realized)

    def _order_update(
        self,
        now: int,
        rec: OrderRec,
        exec_type: str,
        *,
        fill: OrderFilled | None = None,
        realized: int = 0,
        expiry_reason: int = 0,
    ) -> None:
        ins = rec.ins
        ms = now // _MS
        bids, asks = self._open_notional(rec.ins.inst)
        self.user_out.append(
            {
                "e": "ORDER_TRADE_UPDATE",
                "E": ms,
                "T": ms,
                "o": {
                    "s": ins.symbol,
                    "c": rec.client_id,
                    "S": _SIDE_TEXT[rec.side],
                    "o": rec.order_type,
                    "f": rec.tif,
                    "q": ins.qty_text(rec.qty),
                    "p": ins.price_text(rec.price),
                    "ap": rec.avg_text(),
                    "sp": "0",
                    "x": exec_type,
                    "X": rec.status,
                    "i": rec.order_id,
                    "l": ins.qty_text(fill.qty if fill else 0),
                    "z": ins.qty_text(rec.executed),
                    "L": ins.price_text(fill.price if fill else 0),
                    "N": fill.fee_asset if fill else None,
                    "n": wire.money_text(fill.fee) if fill else None,
                    "T": ms,
                    "t": fill.trade_id if fill else 0,
                    "b": bids,
                    "a": asks,
                    "m": fill.is_maker if fill else False,
                    "R": rec.reduce_only,
                    "wt": "CONTRACT_PRICE",
                    "ot": rec.order_type,
                    "ps": "BOTH",
                    "cp": False,
                    "AP": None,
                    "cr": None,
                    "pP": False,
                    "si": 0,
                    "ss": 0,
                    "rp": wire.money_text(realized),
                    "V": rec.stp,
                    "pm": "NONE",
                    "gtd": 0,
                    "W": rec.time_ms,
                    "er": str(expiry_reason),
                },
            }
        )

    def _open_notional(self, inst: int) -> tuple[str, str]:
        ins = self.by_inst[inst]
        bids = asks = 0
        for o in self.sim.orders.values():
            if o.inst == inst:
                n = ins.notional(o.price, o.remaining)
                if o.side is Side.BUY:
                    bids += n
                else:
                    asks += n
        return rec_quote(ins, bids), rec_quote(ins, asks)

    def _on_account(self, now: int, ev: AccountUpdated) -> None:
        ms = now // _MS
        positions = []
        for row in ev.positions:
            ins = self.by_inst[row.inst]
            positions.append(
                {
                    "s": ins.symbol,
                    "pa": ins.qty_text(row.qty),
                    "ep": wire.e8_text(row.entry_e8),
                    "bep": wire.e8_text(self._break_even_e8(row.inst)),
                    "cr": wire.money_text(self.shadow[row.inst].realized * ins.minor_per_ticklot),
                    "up": wire.money_text(self._unrealized(row.inst)),
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                }
            )
        balances = [
            {
                "a": b.asset,
                "wb": wire.money_text(b.wallet),
                "cw": wire.money_text(b.wallet),
                "bc": "0",
            }
            for b in ev.balances
        ]
        self.user_out.append(
            {
                "e": "ACCOUNT_UPDATE",
                "E": ms,
                "T": ms,
                "a": {"m": ev.reason, "B": balances, "P": positions},
            }
        )

    # ------------------------------------------------------------------------------------
    # account arithmetic (views; the simulator holds the money)

    def _mark_ticks(self, inst: int) -> int:
        m = self.sim.markets[inst]
        ins = m.ins
        if m.mark_e8:
            return (
                m.mark_e8 * 10**ins.price_scale.decimals // ins.price_scale.unit // PRICE_E8_SCALE
            )
        bid, ask = m.best()
        return m.last_price or ((bid + ask) // 2 if bid and ask else bid or ask)

    def _mark_e8(self, inst: int) -> int:
        m = self.sim.markets[inst]
        if m.mark_e8:
            return m.mark_e8
        ins = m.ins
        return (
            self._mark_ticks(inst)
            * ins.price_scale.unit
            * PRICE_E8_SCALE
            // (10**ins.price_scale.decimals)
        )

    def _unrealized(self, inst: int) -> int:
        pos = self.sim.positions[inst]
        if not pos.qty:
            return 0
        px = self._mark_ticks(inst)
        return pos.unrealized(px) * self.by_inst[inst].minor_per_ticklot if px else 0

    def _break_even_e8(self, inst: int) -> int:
        pos = self.sim.positions[inst]
        if not pos.qty:
            return 0
        entry = self.sim._entry_e8(inst)
        ins = self.by_inst[inst]
        qty = ins.qty_scale.to_decimal(abs(pos.qty))
        fee_per_unit = Decimal(self.fees_paid.get(inst, 0)) / QUOTE_SCALE / qty
        side = 1 if pos.qty > 0 else -1
        return max(0, entry + int(side * fee_per_unit * PRICE_E8_SCALE))

    def _notional(self, inst: int) -> int:
        pos = self.sim.positions[inst]
        return self.by_inst[inst].notional(self._mark_ticks(inst), pos.qty)

    def _lev(self, symbol: str) -> int:
        return self.leverage.get(symbol, self.config.leverage)

    def _order_margin(self, inst: int) -> int:
        ins = self.by_inst[inst]
        total = 0
        for o in self.sim.orders.values():
            if o.inst == inst and not o.reduce_only:
                total += ins.notional(o.price, o.remaining)
        return total // self._lev(ins.symbol)

    def _asset_totals(self, asset: str) -> dict[str, int]:
        mmr = Decimal(self.config.maint_margin_rate)
        pos_im = oo_im = maint = upnl = 0
        for inst, ins in self.by_inst.items():
            if ins.spec.margin_asset != asset:
                continue
            notional = abs(self._notional(inst))
            pos_im += notional // self._lev(ins.symbol)
            maint += int(notional * mmr)
            oo_im += self._order_margin(inst)
            upnl += self._unrealized(inst)
        wallet = self.sim.wallets.get(asset, 0)
        return {
            "wallet": wallet,
            "upnl": upnl,
            "pos_im": pos_im,
            "oo_im": oo_im,
            "maint": maint,
            "available": max(0, self.sim.available(asset)),
        }

    # ------------------------------------------------------------------------------------
    # handlers: one per endpoint, ``_h_<name>(params, now) -> JSON-able``

    def _ins(self, params: dict[str, str]) -> Instrument:
        symbol = params.get("symbol")
        if not symbol:
            raise _missing("symbol")
        ins = self.by_symbol.get(symbol)
        if ins is None:
            raise ApiError(-1121, "Invalid symbol.")
        return ins

    def _h_ping(self, params: dict[str, str], now: int) -> Any:
        return {}

    def _h_time(self, params: dict[str, str], now: int) -> Any:
        return {"serverTime": now // _MS}

    def _h_exchange_info(self, params: dict[str, str], now: int) -> Any:
        cfg = self.config.rate_limits
        assets = sorted({ins.spec.margin_asset for ins in self.by_inst.values()})
        return {
            "timezone": "UTC",
            "serverTime": now // _MS,
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": cfg.weight_per_minute,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": cfg.orders_per_minute,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "SECOND",
                    "intervalNum": 10,
                    "limit": cfg.orders_per_10s,
                },
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"} for a in assets
            ],
            "symbols": [_symbol_info(ins) for ins in self.by_inst.values()],
        }

    def _h_depth(self, params: dict[str, str], now: int) -> Any:
        ins = self._ins(params)
        limit = _int(params, "limit", 500)
        if limit not in (5, 10, 20, 50, 100, 500, 1000):
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        m = self.sim.markets[ins.inst]
        bids = sorted((p for p, q in m.bids.items() if q), reverse=True)[:limit]
        asks = sorted(p for p, q in m.asks.items() if q)[:limit]
        pt, qt = ins.price_text, ins.qty_text
        ms = now // _MS
        return {
            "lastUpdateId": m.book_u,
            "E": ms,
            "T": ms,
            "bids": [[pt(p), qt(m.bids[p])] for p in bids],
            "asks": [[pt(p), qt(m.asks[p])] for p in asks],
        }

    def _h_book_ticker(self, params: dict[str, str], now: int) -> Any:
        symbols = [self._ins(params)] if params.get("symbol") else list(self.by_inst.values())
        rows = []
        for ins in symbols:
            m = self.sim.markets[ins.inst]
            bid, ask = m.best()
            rows.append(
                {
                    "symbol": ins.symbol,
                    "bidPrice": ins.price_text(bid),
                    "bidQty": ins.qty_text(m.level(Side.BUY, bid)),
                    "askPrice": ins.price_text(ask),
                    "askQty": ins.qty_text(m.level(Side.SELL, ask)),
                    "time": now // _MS,
                    "lastUpdateId": max(m.top_u, m.book_u),
                }
            )
        return rows[0] if params.get("symbol") else rows

    def _h_premium_index(self, params: dict[str, str], now: int) -> Any:
        symbols = [self._ins(params)] if params.get("symbol") else list(self.by_inst.values())
        rows = []
        for ins in symbols:
            m = self.sim.markets[ins.inst]
            mark = wire.e8_text(self._mark_e8(ins.inst))
            rows.append(
                {
                    "symbol": ins.symbol,
                    "markPrice": mark,
                    "indexPrice": mark,
                    "estimatedSettlePrice": mark,
                    "lastFundingRate": wire.rate_8(m.funding_rate),
                    "interestRate": "0.00010000",
                    "nextFundingTime": m.next_funding_ns // _MS,
                    "time": now // _MS,
                }
            )
        return rows[0] if params.get("symbol") else rows

    # -- orders --------------------------------------------------------------------------

    def _parse_new(self, p: dict[str, str], now: int) -> tuple[PlaceOrder, OrderRec]:
        ins = self._ins(p)
        side = _SIDES.get(p.get("side", ""))
        if side is None:
            if not p.get("side"):
                raise _missing("side")
            raise ApiError(-1117, "Invalid side.")
        otype = p.get("type", "")
        if not otype:
            raise _missing("type")
        if otype in _CONDITIONAL:
            raise ApiError(
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API "
                "endpoints instead.",
            )
        if otype not in ("LIMIT", "MARKET"):
            raise ApiError(-1116, "Invalid orderType.")
        ps = p.get("positionSide", "BOTH")
        if ps not in ("BOTH", "LONG", "SHORT"):
            raise ApiError(-4006, "Invalid position side.")
        if ps != "BOTH" and not self.sim.config.hedge_mode:
            raise ApiError(-4061, "Order's position side does not match user's setting.")
        if "priceMatch" in p and p["priceMatch"] != "NONE":
            raise ApiError(-1106, "Parameter 'priceMatch' sent when not required.")
        reduce_text = p.get("reduceOnly", "false")
        if reduce_text not in ("true", "false"):
            raise ApiError(-1130, "Data sent for parameter 'reduceOnly' is not valid.")
        if "quantity" not in p:
            raise _missing("quantity")
        qty = parse_qty(ins, p["quantity"])
        market = otype == "MARKET"
        if market:
            if "price" in p:
                raise ApiError(-1106, "Parameter 'price' sent when not required.")
            if "timeInForce" in p:
                raise ApiError(-1106, "Parameter 'timeInForce' sent when not required.")
            price, tif_text = 0, "GTC"
        else:
            if "timeInForce" not in p:
                raise _missing("timeInForce")
            if "price" not in p:
                raise _missing("price")
            tif_text = p["timeInForce"]
            price = parse_price(ins, p["price"])
        tif = _TIFS.get(tif_text)
        if tif is None:
            raise ApiError(-1115, "Invalid timeInForce.")
        cid = p.get("newClientOrderId")
        if cid is None:
            cid = f"lx{self.next_client_seq:020d}"
            self.next_client_seq += 1
        elif not CLIENT_ID_RE.match(cid):
            raise ApiError(-4015, "Client order id is not valid.")
        resp = p.get("newOrderRespType", "ACK")
        if resp not in ("ACK", "RESULT"):
            raise ApiError(-1130, "Data sent for parameter 'newOrderRespType' is not valid.")
        stp = p.get("selfTradePreventionMode", "NONE")
        intent = PlaceOrder(
            ins.inst,
            cid,
            side,
            price,
            qty,
            tif,
            OrderType.MARKET if market else OrderType.LIMIT,
            reduce_text == "true",
        )
        rec = OrderRec(
            ins, cid, side, otype, tif_text, price, qty, reduce_text == "true", stp, now // _MS
        )
        return intent, rec

    def _place(self, p: dict[str, str], now: int) -> dict[str, Any]:
        intent, rec = self._parse_new(p, now)
        self._pending[intent.client_id] = rec
        answers = self._submit(now, intent)
        self._pending.pop(intent.client_id, None)
        for ev in answers:
            if type(ev) is OrderRejected:
                raise ApiError(ev.code, ev.message)
        if p.get("newOrderRespType") == "RESULT":
            return rec.to_json()
        return rec.ack

    def _h_new_order(self, p: dict[str, str], now: int) -> Any:
        return self._place(p, now)

    def _batch_items(self, p: dict[str, str], name: str) -> list[dict[str, str]]:
        raw = p.get(name)
        if not raw:
            raise _missing(name)
        try:
            items = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.") from None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        if not items or len(items) > 5:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        return [{k: _ws_text(v) for k, v in item.items()} for item in items]

    def _h_batch_new(self, p: dict[str, str], now: int) -> Any:
        out: list[Any] = []
        for item in self._batch_items(p, "batchOrders"):
            try:
                out.append(self._place(item, now))
            except (ApiError, Reject) as e:
                out.append(_err(e))
        return out

    def _h_batch_amend(self, p: dict[str, str], now: int) -> Any:
        out: list[Any] = []
        for item in self._batch_items(p, "batchOrders"):
            try:
                out.append(self._h_amend_order(item, now))
            except (ApiError, Reject) as e:
                out.append(_err(e))
        return out

    def _find(self, p: dict[str, str], ins: Instrument, code: int, msg: str) -> OrderRec:
        if "orderId" in p:
            try:
                rec = self.orders.get(int(p["orderId"]))
            except ValueError:
                raise ApiError(-1100, "Illegal characters found in parameter 'orderId'.") from None
        elif "origClientOrderId" in p:
            oid = self.by_cid.get(p["origClientOrderId"])
            rec = self.orders.get(oid) if oid is not None else None
        else:
            raise ApiError(-1102, "Either orderId or origClientOrderId must be sent.")
        if rec is None or rec.ins is not ins:
            raise ApiError(code, msg)
        return rec

    def _h_cancel_order(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        rec = self._find(p, ins, -2011, "Unknown order sent.")
        if not rec.is_open:
            raise ApiError(-2011, "Unknown order sent.")
        for ev in self._submit(now, CancelOrder(ins.inst, rec.client_id)):
            if type(ev) is CancelRejected:
                raise ApiError(ev.code, ev.message)
        return rec.to_json()

    def _h_amend_order(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        rec = self._find(p, ins, -2013, "Order does not exist.")
        for name in ("side", "quantity", "price"):
            if name not in p:
                raise _missing(name)
        side = _SIDES.get(p["side"])
        if side is None:
            raise ApiError(-1117, "Invalid side.")
        qty = parse_qty(ins, p["quantity"])
        price = parse_price(ins, p["price"])
        if not rec.is_open:
            raise ApiError(-2013, "Order does not exist.")
        for ev in self._submit(now, AmendOrder(ins.inst, rec.client_id, side, price, qty)):
            if type(ev) is AmendRejected:
                raise ApiError(ev.code, ev.message)
        return rec.to_json()

    def _h_batch_cancel(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        if "orderIdList" in p:
            key, name = "orderId", "orderIdList"
        elif "origClientOrderIdList" in p:
            key, name = "origClientOrderId", "origClientOrderIdList"
        else:
            raise ApiError(-1102, "Either orderIdList or origClientOrderIdList must be sent.")
        try:
            ids = msgspec.json.decode(p[name])
        except msgspec.DecodeError:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.") from None
        want = int if key == "orderId" else str
        if not isinstance(ids, list) or not ids or len(ids) > 10:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        if not all(type(i) is want for i in ids):
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        out: list[Any] = []
        for i in ids:
            try:
                out.append(self._h_cancel_order({"symbol": ins.symbol, key: str(i)}, now))
            except (ApiError, Reject) as e:
                out.append(_err(e))
        return out

    def _h_cancel_all(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        self._submit(now, CancelAllOrders(ins.inst, "allOpenOrders"))
        return {"code": 200, "msg": _MARGIN_MSG}

    def _h_countdown(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        if "countdownTime" not in p:
            raise _missing("countdownTime")
        ms = _int(p, "countdownTime", 0)
        if ms < 0:
            raise ApiError(-1130, "Data sent for parameter 'countdownTime' is not valid.")
        if ms == 0:
            self.countdowns.pop(ins.symbol, None)
        else:
            self.countdowns[ins.symbol] = (now + ms * _MS, ms)
        return {"symbol": ins.symbol, "countdownTime": str(ms)}

    def _h_query_order(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        return self._find(p, ins, -2013, "Order does not exist.").to_json(query=True)

    def _h_open_order(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        rec = self._find(p, ins, -2013, "Order does not exist.")
        if not rec.is_open:
            raise ApiError(-2013, "Order does not exist.")
        return rec.to_json(query=True)

    def _h_open_orders(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p) if p.get("symbol") else None
        out = []
        for o in self.sim.orders.values():
            rec = self.orders.get(o.order_id)
            if rec is not None and (ins is None or rec.ins is ins):
                out.append(rec.to_json(query=True))
        return out

    def _h_all_orders(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        limit = min(1000, _int(p, "limit", 500))
        start = _int(p, "orderId", 0)
        rows = [r for r in self.orders.values() if r.ins is ins and r.order_id >= start]
        return (
            [r.to_json(query=True) for r in rows[-limit:]]
            if not start
            else [r.to_json(query=True) for r in rows[:limit]]
        )

    def _h_user_trades(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        limit = min(1000, _int(p, "limit", 500))
        order_id = _int(p, "orderId", 0)
        from_id = _int(p, "fromId", 0)
        start = _int(p, "startTime", 0)
        end = _int(p, "endTime", 0)
        if from_id and (start or end):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        rows = [
            t
            for t in self.trades
            if t.inst == ins.inst
            and (not order_id or t.order_id == order_id)
            and t.trade_id >= from_id
            and (not start or t.time_ms >= start)
            and (not end or t.time_ms <= end)
        ]
        rows = rows[:limit] if from_id else rows[-limit:]
        out = []
        for t in rows:
            out.append(
                {
                    "symbol": ins.symbol,
                    "id": t.trade_id,
                    "orderId": t.order_id,
                    "side": _SIDE_TEXT[t.side],
                    "price": ins.price_text(t.price),
                    "qty": ins.qty_text(t.qty),
                    "realizedPnl": wire.money_text(t.realized),
                    "marginAsset": ins.spec.margin_asset,
                    "quoteQty": rec_quote(ins, ins.notional(t.price, t.qty)),
                    "commission": wire.money_text(t.fee),
                    "commissionAsset": t.fee_asset,
                    "time": t.time_ms,
                    "positionSide": "BOTH",
                    "buyer": t.side is Side.BUY,
                    "maker": t.maker,
                }
            )
        return out

    def _h_commission_rate(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        return {
            "symbol": ins.symbol,
            "makerCommissionRate": wire.rate_text(self.sim.maker_fee[ins.inst]),
            "takerCommissionRate": wire.rate_text(self.sim.taker_fee[ins.inst]),
            "rpiCommissionRate": wire.rate_text(self.sim.maker_fee[ins.inst]),
        }

    # -- account -------------------------------------------------------------------------

    def _position_symbols(self, p: dict[str, str], *, only_active: bool) -> list[Instrument]:
        if p.get("symbol"):
            return [self._ins(p)]
        out = []
        for inst, ins in self.by_inst.items():
            if only_active and not (
                self.sim.positions[inst].qty
                or any(o.inst == inst for o in self.sim.orders.values())
            ):
                continue
            out.append(ins)
        return out

    def _h_position_risk_v2(self, p: dict[str, str], now: int) -> Any:
        rows = []
        for ins in self._position_symbols(p, only_active=False):
            inst = ins.inst
            pos = self.sim.positions[inst]
            rows.append(
                {
                    "entryPrice": wire.e8_text(self.sim._entry_e8(inst)),
                    "breakEvenPrice": wire.e8_text(self._break_even_e8(inst)),
                    "marginType": self.margin_type.get(ins.symbol, "cross"),
                    "isAutoAddMargin": "false",
                    "isolatedMargin": "0.00000000",
                    "leverage": str(self._lev(ins.symbol)),
                    "liquidationPrice": wire.e8_text(self.sim.liquidation_price_e8(inst)),
                    "markPrice": wire.e8_text(self._mark_e8(inst)),
                    "maxNotionalValue": "1000000000",
                    "positionAmt": ins.qty_text(pos.qty),
                    "notional": wire.money_text(self._notional(inst)),
                    "isolatedWallet": "0",
                    "symbol": ins.symbol,
                    "unRealizedProfit": wire.money_text(self._unrealized(inst)),
                    "positionSide": "BOTH",
                    "updateTime": now // _MS if pos.qty else 0,
                }
            )
        return rows

    def _h_position_risk_v3(self, p: dict[str, str], now: int) -> Any:
        rows = []
        mmr = Decimal(self.config.maint_margin_rate)
        for ins in self._position_symbols(p, only_active=True):
            inst = ins.inst
            pos = self.sim.positions[inst]
            notional = self._notional(inst)
            im = abs(notional) // self._lev(ins.symbol)
            oo = self._order_margin(inst)
            bid_n, ask_n = self._open_notional(inst)
            rows.append(
                {
                    "symbol": ins.symbol,
                    "positionSide": "BOTH",
                    "positionAmt": ins.qty_text(pos.qty),
                    "entryPrice": wire.e8_text(self.sim._entry_e8(inst)),
                    "breakEvenPrice": wire.e8_text(self._break_even_e8(inst)),
                    "markPrice": wire.e8_text(self._mark_e8(inst)),
                    "unRealizedProfit": wire.money_text(self._unrealized(inst)),
                    "liquidationPrice": wire.e8_text(self.sim.liquidation_price_e8(inst)),
                    "isolatedMargin": "0",
                    "notional": wire.money_text(notional),
                    "marginAsset": ins.spec.margin_asset,
                    "isolatedWallet": "0",
                    "initialMargin": wire.money_text(im + oo),
                    "maintMargin": wire.money_text(int(abs(notional) * mmr)),
                    "positionInitialMargin": wire.money_text(im),
                    "openOrderInitialMargin": wire.money_text(oo),
                    "adl": 0,
                    "bidNotional": bid_n,
                    "askNotional": ask_n,
                    "updateTime": now // _MS,
                }
            )
        return rows

    def _asset_rows(self, now: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
        rows = []
        totals: dict[str, int] = {}
        for asset in sorted(self.sim.wallets):
            t = self._asset_totals(asset)
            margin_balance = t["wallet"] + t["upnl"]
            rows.append(
                {
                    "asset": asset,
                    "walletBalance": wire.money_text(t["wallet"]),
                    "unrealizedProfit": wire.money_text(t["upnl"]),
                    "marginBalance": wire.money_text(margin_balance),
                    "maintMargin": wire.money_text(t["maint"]),
                    "initialMargin": wire.money_text(t["pos_im"] + t["oo_im"]),
                    "positionInitialMargin": wire.money_text(t["pos_im"]),
                    "openOrderInitialMargin": wire.money_text(t["oo_im"]),
                    "maxWithdrawAmount": wire.money_text(t["available"]),
                    "crossWalletBalance": wire.money_text(t["wallet"]),
                    "crossUnPnl": wire.money_text(t["upnl"]),
                    "availableBalance": wire.money_text(t["available"]),
                    "marginAvailable": True,
                    "updateTime": now // _MS,
                }
            )
            if asset == "USDT":  # single-asset mode: the totals are USDT's (ref/binance.md §1.8)
                totals = t
        return rows, totals

    def _account_positions(self, now: int, *, v3: bool) -> list[dict[str, Any]]:
        out = []
        for ins in self._position_symbols({}, only_active=v3):
            inst = ins.inst
            pos = self.sim.positions[inst]
            notional = self._notional(inst)
            im = abs(notional) // self._lev(ins.symbol)
            oo = self._order_margin(inst)
            mm = int(abs(notional) * Decimal(self.config.maint_margin_rate))
            if v3:
                out.append(
                    {
                        "symbol": ins.symbol,
                        "positionSide": "BOTH",
                        "positionAmt": ins.qty_text(pos.qty),
                        "unrealizedProfit": wire.money_text(self._unrealized(inst)),
                        "isolatedMargin": "0",
                        "notional": wire.money_text(notional),
                        "isolatedWallet": "0",
                        "initialMargin": wire.money_text(im + oo),
                        "maintMargin": wire.money_text(mm),
                        "updateTime": now // _MS,
                    }
                )
            else:
                bid_n, ask_n = self._open_notional(inst)
                out.append(
                    {
                        "symbol": ins.symbol,
                        "initialMargin": wire.money_text(im + oo),
                        "maintMargin": wire.money_text(mm),
                        "unrealizedProfit": wire.money_text(self._unrealized(inst)),
                        "positionInitialMargin": wire.money_text(im),
                        "openOrderInitialMargin": wire.money_text(oo),
                        "leverage": str(self._lev(ins.symbol)),
                        "isolated": False,
                        "entryPrice": wire.e8_text(self.sim._entry_e8(inst)),
                        "breakEvenPrice": wire.e8_text(self._break_even_e8(inst)),
                        "maxNotional": "1000000000",
                        "bidNotional": bid_n,
                        "askNotional": ask_n,
                        "positionSide": "BOTH",
                        "positionAmt": ins.qty_text(pos.qty),
                        "updateTime": now // _MS,
                    }
                )
        return out

    def _account(self, now: int, *, v3: bool) -> dict[str, Any]:
        assets, t = self._asset_rows(now)
        if not t:
            t = {"wallet": 0, "upnl": 0, "pos_im": 0, "oo_im": 0, "maint": 0, "available": 0}
        out: dict[str, Any] = {}
        if not v3:
            out.update(
                {
                    "feeTier": 0,
                    "canTrade": True,
                    "canDeposit": True,
                    "canWithdraw": True,
                    "tradeGroupId": -1,
                    "updateTime": 0,
                    "multiAssetsMargin": False,
                }
            )
        m = wire.money_text
        out.update(
            {
                "totalInitialMargin": m(t["pos_im"] + t["oo_im"]),
                "totalMaintMargin": m(t["maint"]),
                "totalWalletBalance": m(t["wallet"]),
                "totalUnrealizedProfit": m(t["upnl"]),
                "totalMarginBalance": m(t["wallet"] + t["upnl"]),
                "totalPositionInitialMargin": m(t["pos_im"]),
                "totalOpenOrderInitialMargin": m(t["oo_im"]),
                "totalCrossWalletBalance": m(t["wallet"]),
                "totalCrossUnPnl": m(t["upnl"]),
                "availableBalance": m(t["available"]),
                "maxWithdrawAmount": m(t["available"]),
                "assets": assets,
                "positions": self._account_positions(now, v3=v3),
            }
        )
        return out

    def _h_account_v2(self, p: dict[str, str], now: int) -> Any:
        return self._account(now, v3=False)

    def _h_account_v3(self, p: dict[str, str], now: int) -> Any:
        return self._account(now, v3=True)

    def _h_balance(self, p: dict[str, str], now: int) -> Any:
        out = []
        for asset in sorted(self.sim.wallets):
            t = self._asset_totals(asset)
            out.append(
                {
                    "accountAlias": "SgsR",
                    "asset": asset,
                    "balance": wire.money_text(t["wallet"]),
                    "crossWalletBalance": wire.money_text(t["wallet"]),
                    "crossUnPnl": wire.money_text(t["upnl"]),
                    "availableBalance": wire.money_text(t["available"]),
                    "maxWithdrawAmount": wire.money_text(t["available"]),
                    "marginAvailable": True,
                    "updateTime": now // _MS,
                }
            )
        return out

    def _h_account_config(self, p: dict[str, str], now: int) -> Any:
        return {
            "feeTier": 0,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "dualSidePosition": self.sim.config.hedge_mode,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
        }

    def _h_symbol_config(self, p: dict[str, str], now: int) -> Any:
        symbols = [self._ins(p)] if p.get("symbol") else list(self.by_inst.values())
        return [
            {
                "symbol": ins.symbol,
                "marginType": self.margin_type.get(ins.symbol, "CROSSED").upper(),
                "isAutoAddMargin": False,
                "leverage": self._lev(ins.symbol),
                "maxNotionalValue": "1000000000",
            }
            for ins in symbols
        ]

    def _h_leverage(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        if "leverage" not in p:
            raise _missing("leverage")
        lev = _int(p, "leverage", 0)
        if not 1 <= lev <= 125:
            raise ApiError(-4028, "Leverage is not valid")
        self.leverage[ins.symbol] = lev
        # the matching model has one leverage for its margin checks: the last one set
        self.sim.config.leverage = lev
        return {"leverage": lev, "maxNotionalValue": "1000000000", "symbol": ins.symbol}

    def _h_margin_type(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        mt = p.get("marginType", "")
        if mt not in ("ISOLATED", "CROSSED"):
            raise ApiError(-1130, "Data sent for parameter 'marginType' is not valid.")
        if self.margin_type.get(ins.symbol, "CROSSED") == mt:
            raise ApiError(-4046, "No need to change margin type.")
        if mt == "ISOLATED":
            # the matching model is cross margin only; refuse rather than pretend
            raise ApiError(-4047, "Margin type cannot be changed if there exists open orders.")
        self.margin_type[ins.symbol] = mt
        return {"code": 200, "msg": "success"}

    def _h_get_dual(self, p: dict[str, str], now: int) -> Any:
        return {"dualSidePosition": self.sim.config.hedge_mode}

    def _h_set_dual(self, p: dict[str, str], now: int) -> Any:
        want = p.get("dualSidePosition")
        if want not in ("true", "false"):
            raise _missing("dualSidePosition")
        if (want == "true") == self.sim.config.hedge_mode:
            raise ApiError(-4059, "No need to change position side.")
        if self.sim.orders:
            raise ApiError(-4067, "Position side cannot be changed if there exists open orders.")
        if any(pos.qty for pos in self.sim.positions.values()):
            raise ApiError(-4068, "Position side cannot be changed if there exists position.")
        self.sim.config.hedge_mode = want == "true"
        return {"code": 200, "msg": "success"}

    def _h_rate_limit_order(self, p: dict[str, str], now: int) -> Any:
        return [r for r in self._ws_limits() if r["rateLimitType"] == "ORDERS"]

    # -- listenKey -----------------------------------------------------------------------

    def _h_listen_key_new(self, p: dict[str, str], now: int) -> Any:
        if not self.listen_key:
            alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            self.listen_key = "".join(self.rng.choice(alphabet) for _ in range(64))
        self.listen_key_expiry_ns = now + self.listen_key_ttl_ns
        return {"listenKey": self.listen_key}

    def _h_listen_key_keepalive(self, p: dict[str, str], now: int) -> Any:
        given = p.get("listenKey")
        if not self.listen_key or (given and given != self.listen_key):
            raise ApiError(-1125, "This listenKey does not exist.")
        self.listen_key_expiry_ns = now + self.listen_key_ttl_ns
        return {"listenKey": self.listen_key}

    def _h_listen_key_close(self, p: dict[str, str], now: int) -> Any:
        self.listen_key = ""
        return {}


# ----------------------------------------------------------------------------------------
# helpers


def rec_quote(ins: Instrument, minor: int) -> str:
    d = min(8, ins.price_scale.decimals + ins.qty_scale.decimals)
    return scaled_to_text(minor // 10 ** (8 - d), d)


def _err(e: ApiError | Reject) -> dict[str, Any]:
    if isinstance(e, ApiError):
        return {"code": e.code, "msg": e.msg}
    return {"code": e.code, "msg": e.message}


def _params(query: bytes, body: bytes) -> dict[str, str]:
    """Query string and form body; the query string wins on a duplicate (Binance's rule)."""
    out: dict[str, str] = {}
    for raw in (body, query):
        if not raw:
            continue
        try:
            pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise ApiError(-1100, "Illegal characters found in a parameter.") from None
        for k, v in pairs:
            if v == "" or v != v.strip():
                raise ApiError(
                    -1102, f"Mandatory parameter '{k}' was not sent, was empty/null, or malformed."
                )
            out[k] = v
    return out


def _int(p: dict[str, str], name: str, default: int) -> int:
    v = p.get(name)
    if v is None:
        return default
    try:
        return int(v)
    except ValueError:
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'.") from None


def _ws_text(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return msgspec.json.encode(v).decode()
    return str(v)


def _symbol_info(ins: Instrument) -> dict[str, Any]:
    spec = ins.spec
    pt, qt = ins.price_text, ins.qty_text
    pct: list[dict[str, Any]] = []
    if spec.percent_up:
        pct.append(
            {
                "multiplierDown": rate_4(spec.percent_down),
                "multiplierUp": rate_4(spec.percent_up),
                "multiplierDecimal": "4",
                "filterType": "PERCENT_PRICE",
            }
        )
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": spec.contract_type,
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base_asset,
        "quoteAsset": spec.quote_asset,
        "marginAsset": spec.margin_asset,
        "pricePrecision": ins.price_scale.decimals,
        "quantityPrecision": ins.qty_scale.decimals,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {
                "minPrice": pt(spec.min_price),
                "maxPrice": pt(spec.max_price),
                "filterType": "PRICE_FILTER",
                "tickSize": spec.tick_size,
            },
            {
                "stepSize": spec.step_size,
                "filterType": "LOT_SIZE",
                "maxQty": qt(spec.max_qty),
                "minQty": qt(spec.min_qty),
            },
            {
                "stepSize": spec.step_size,
                "filterType": "MARKET_LOT_SIZE",
                "maxQty": qt(spec.market_max_qty or spec.max_qty),
                "minQty": qt(spec.min_qty),
            },
            {"limit": spec.max_num_orders, "filterType": "MAX_NUM_ORDERS"},
            {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
            {
                "notional": wire.money_text(spec.min_notional).rstrip("0").rstrip("."),
                "filterType": "MIN_NOTIONAL",
            },
            *pct,
        ],
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def rate_4(v: int) -> str:
    return scaled_to_text(v // 10**4, 4)
