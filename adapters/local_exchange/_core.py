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

Layout: this module holds the entry points (market events, timers, REST and WS-API dispatch,
rate limits, faults). The handlers, ``_h_<name>(params, now) -> JSON-able``, one per endpoint
of ``_routes.py``, live in mixins that share the state declared in ``_state.py``:
``_market_rest.py`` (market data), ``_orders.py`` (order entry and queries),
``_account.py`` (margin arithmetic and account views), ``_user_stream.py`` (the simulator's
answers -> order records and user-stream messages; listenKey). ``_records.py`` has the order
and trade records, ``_params.py`` the error type and parameter parsing.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

import msgspec

from engine import (
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelAllOrders,
    Event,
    Instrument,
    InstrumentLoaded,
    Intent,
    KlineUpdated,
    MarkPriceUpdated,
    Position,
    TopOfBookUpdated,
    TradePrinted,
)
from replay.sim import RateLimiter, Reject, SimConfig, SimExchange

from . import _wire as wire
from ._account import AccountMixin
from ._auth import AuthError, check_signed, check_timestamp, sign, ws_payload
from ._faults import Faults, OrderFault
from ._history import MarketHistory
from ._market_rest import MarketRestMixin
from ._orders import OrderEntryMixin
from ._params import ApiError, Response, _int, _missing, _params, _ws_text
from ._records import IncomeRow, OrderRec, TradeRec
from ._routes import ORDER_ENDPOINTS, ROUTES, WS_METHODS, depth_weight, klines_weight
from ._user_stream import UserStreamMixin

__all__ = ["ApiError", "LocalExchange", "OrderRec", "Response"]

_MS = 1_000_000
_S = 1_000_000_000

#: partial depth push intervals (ms) by suffix: ``@depth5`` is 250 ms, as Binance
_PARTIAL_SPEEDS = {"": 250, "100ms": 100, "250ms": 250, "500ms": 500}


class _Partial:
    """Throttle state of one partial depth stream."""

    __slots__ = ("every", "first", "last_ms", "last_u", "levels")

    def __init__(self, levels: int, every: int) -> None:
        self.levels = levels
        self.every = every
        self.first = -1  # U of the next message: the first change folded into it
        self.last_u = -1
        self.last_ms = -(10**15)


class LocalExchange(MarketRestMixin, OrderEntryMixin, AccountMixin, UserStreamMixin):
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
        #: inst -> partial depth stream kind ("depth5@100ms") -> its throttle state
        self.partial_depth: dict[int, dict[str, _Partial]] = {}
        self.history = MarketHistory()
        self.income: list[IncomeRow] = []
        self.next_tran_id = 1
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

    def want_depth(self, symbol: str, kind: str) -> bool:
        """Start building ``<symbol>@depth<N>[@100ms|@500ms]`` (``kind`` without the symbol)."""
        ins = self.by_symbol.get(symbol.upper())
        levels, _, speed = kind.removeprefix("depth").partition("@")
        every = _PARTIAL_SPEEDS.get(speed)
        if ins is None or levels not in ("5", "10", "20") or every is None:
            return False
        self.partial_depth.setdefault(ins.inst, {}).setdefault(kind, _Partial(int(levels), every))
        return True

    def _partials(self, ins: Instrument, first: int, final: int, prev: int, ms: int) -> None:
        """The partial depth streams due after a book change (top N levels, Binance's
        futures shape: U/u span the changes folded in, pu is the last message's u)."""
        m = self.sim.markets[ins.inst]
        sym = ins.symbol.lower()
        for kind, st in self.partial_depth[ins.inst].items():
            if final <= st.last_u:  # e.g. a snapshot of the book already sent
                continue
            if st.first < 0:
                st.first = first
            if ms - st.last_ms < st.every:
                continue
            bids = heapq.nlargest(st.levels, (p for p, q in m.bids.items() if q))
            asks = heapq.nsmallest(st.levels, (p for p, q in m.asks.items() if q))
            pt, qt = ins.price_text, ins.qty_text
            msg = {
                "e": "depthUpdate",
                "E": ms,
                "T": ms,
                "s": ins.symbol,
                "U": st.first,
                "u": final,
                "pu": st.last_u if st.last_u >= 0 else prev,
                "b": [[pt(p), qt(m.bids[p])] for p in bids],
                "a": [[pt(p), qt(m.asks[p])] for p in asks],
            }
            self.market_out.append((sym, kind, msg))
            st.first, st.last_u, st.last_ms = -1, final, ms

    def on_market(self, now: int, ev: Event) -> None:
        """The market moved (``ev`` already stamped in exchange time): match, publish."""
        self.stats["market_events"] += 1
        if self._journal is not None:
            self._journal(now, ev, None)
        if type(ev) is InstrumentLoaded and ev.symbol not in self.by_symbol:
            self._add(ev)
            self.shadow[ev.inst] = Position(ev.inst)
        kind = type(ev)
        if kind is MarkPriceUpdated:
            # the funding time passed: the simulator settles it on this event (its rule)
            m = self.sim.markets.get(ev.inst)
            if m is not None and m.next_funding_ns and ev.ts_ns >= m.next_funding_ns:
                self.history.on_funding(ev.inst, m.next_funding_ns, m.funding_rate, ev.mark_e8)
        answers = self.sim.apply_market(now, ev)
        out = self.market_out
        if kind is TopOfBookUpdated:
            ins = self.by_inst[ev.inst]
            out.append((ins.symbol.lower(), "bookTicker", wire.book_ticker(ins, ev)))
        elif kind is BookDeltaReceived:
            ins = self.by_inst[ev.inst]
            if not self.faults.take_depth_gap():
                out.append((ins.symbol.lower(), "depth", wire.depth_update(ins, ev)))
            if ev.inst in self.partial_depth:
                self._partials(
                    ins,
                    ev.first_update_id,
                    ev.final_update_id,
                    ev.prev_final_update_id,
                    ev.ts_ns // _MS,
                )
        elif kind is BookSnapshotReceived:
            if ev.inst in self.partial_depth:
                u = ev.last_update_id
                self._partials(self.by_inst[ev.inst], u, u, u, ev.ts_ns // _MS)
        elif kind is TradePrinted:
            ins = self.by_inst[ev.inst]
            sym = ins.symbol.lower()
            trade, agg = wire.trade_messages(ins, ev)
            self.history.on_trade(ins, ev)
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
            self.history.on_kline(ev)
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
        # a batch counts 5 on the 10 s ORDERS window, 1 on the 1 min one (ref/binance.md §6);
        # both are checked before anything is counted
        self.limiter.charge(now, weight, orders, 1 if orders else 0)

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
        route = ROUTES.get((method, path))
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
            fault = self.faults.next_order_fault() if name in ORDER_ENDPOINTS else None
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
            if fault.part:
                params = _first_half_of_batch(name, params)
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
            return depth_weight(_int(params, "limit", 500))
        if name in ("open_orders", "ticker_24hr"):
            return 1 if params.get("symbol") else 40
        if name == "klines":
            return klines_weight(_int(params, "limit", 500))
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
        route = WS_METHODS.get(str(method))
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
            fault = self.faults.next_order_fault() if name in ORDER_ENDPOINTS else None
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


#: a batch endpoint -> the parameter holding its items
_BATCH_PARAM = {
    "batch_new": "batchOrders",
    "batch_amend": "batchOrders",
    "batch_cancel": "origClientOrderIdList",
}


def _first_half_of_batch(name: str, params: dict[str, str]) -> dict[str, str]:
    """``params`` of a batch request cut to its first half of items (rounded up), for a fault
    that leaves a batch partly executed; other requests unchanged."""
    key = _BATCH_PARAM.get(name)
    if key == "origClientOrderIdList" and key not in params:
        key = "orderIdList"
    if key is None or key not in params:
        return params
    try:
        items = msgspec.json.decode(params[key])
    except msgspec.DecodeError:
        return params  # the handler refuses it as it would anyway
    if not isinstance(items, list) or len(items) < 2:
        return params
    return {**params, key: msgspec.json.encode(items[: (len(items) + 1) // 2]).decode()}
