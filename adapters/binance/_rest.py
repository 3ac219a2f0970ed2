"""A thin trio REST client for Binance USDⓈ-M (raw HTTP/1.1 keep-alive, exact-bytes signing).

Theory of operation
-------------------
Every request is built as one encoded string (``_sign.encode_params``), signed over exactly
those bytes and sent as they are: GET/DELETE in the query string, POST/PUT as an
``application/x-www-form-urlencoded`` body (ref/binance.md §2.1).

What may be retried is decided by what a failure *means* (§7.1, §7.3):

* the connection could not be opened (nothing was sent): any request is retried;
* ``-1021`` (timestamp outside recvWindow) is refused before matching: resync the clock, retry
  once;
* a read (GET) or a cancel (DELETE, idempotent) that times out or gets a 5xx is retried with
  exponential back-off;
* an order-changing request (POST/PUT) that times out or gets a 5xx is **never** resent: it
  raises ``OutcomeUnknown`` and the caller resolves it by querying the client order id.

Rate limits: the weight and order-count headers of every answer are kept in ``RateBudget``;
a 429 blocks that budget until ``Retry-After`` (or the end of the window), a 418 blocks all
REST until the ban ends. Requests refused locally raise ``Throttled`` without touching the
network, so a 429 never becomes a 418.

The transport is ``_http11.Http11Pool``, not httpx: an order's bytes are rendered once and
written to an idle keep-alive connection synchronously, ~0.5 ms less per request than httpx.

Nothing here ever puts the API key, the secret or a signature in an exception or a log line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
import trio

from ._http11 import ConnectFailed, Http11Pool, HttpAnswer, SendFailed
from ._sign import Credentials, encode_params
from ._user import ApiError, parse_error

__all__ = [
    "OutcomeUnknown",
    "RateBudget",
    "RestClient",
    "RestError",
    "Throttled",
]

_BANNED_UNTIL = re.compile(r"banned until (\d+)")


class RestError(Exception):
    """Binance answered with an error: the request did not happen (``code`` says why)."""

    def __init__(self, status: int, code: int, msg: str, path: str) -> None:
        self.status = status
        self.code = code
        self.msg = msg
        self.path = path
        super().__init__(f"{path}: HTTP {status} {code} {msg}")


class Throttled(RestError):
    """Refused locally (or by a 429/418): the rate budget is spent until ``until`` (monotonic s)."""

    def __init__(self, code: int, msg: str, path: str, until: float) -> None:
        super().__init__(429, code, msg, path)
        self.until = until


class OutcomeUnknown(Exception):
    """An order-changing request got no definite answer: it may or may not have happened.

    ``timestamp_ms``: the ``timestamp`` the request that went out was signed with (0 if not
    known); the matching engine refuses it once the server's clock is past that plus
    ``recvWindow``.
    """

    def __init__(self, path: str, reason: str, timestamp_ms: int = 0) -> None:
        self.path = path
        self.reason = reason
        self.timestamp_ms = timestamp_ms
        super().__init__(f"{path}: outcome unknown ({reason})")


class RateBudget:
    """Weight and order counts as the exchange reports them, and local blocks after 429/418."""

    def __init__(
        self,
        weight_per_minute: int = 2400,
        orders_per_10s: int = 300,
        orders_per_minute: int = 1200,
        headroom: float = 0.9,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.weight_limit = weight_per_minute
        self.orders_10s_limit = orders_per_10s
        self.orders_1m_limit = orders_per_minute
        self.headroom = headroom
        self.clock = clock
        self.used_weight = 0
        self.orders_10s = 0
        self.orders_1m = 0
        self._weight_at = 0.0
        self._orders_at = 0.0
        self.orders_blocked_until = 0.0
        self.weight_blocked_until = 0.0
        self.banned_until = 0.0
        self.stats = {"429": 0, "418": 0, "throttled_locally": 0}

    def observe(self, headers: Mapping[str, str]) -> None:
        now = self.clock()
        w = headers.get("x-mbx-used-weight-1m")
        if w is not None and w.isdigit():
            self.used_weight = int(w)
            self._weight_at = now
        o10 = headers.get("x-mbx-order-count-10s")
        if o10 is not None and o10.isdigit():
            self.orders_10s = int(o10)
            self._orders_at = now
        o1 = headers.get("x-mbx-order-count-1m")
        if o1 is not None and o1.isdigit():
            self.orders_1m = int(o1)

    def check(
        self, path: str, order: bool, essential: bool, weight: int = 1, orders_10s: int = 1
    ) -> None:
        """Raise ``Throttled`` if this request must not be sent now.

        ``essential`` requests (cancels, the dead-man switch, reconciliation reads) keep going
        until the hard limit; others stop at ``headroom`` of it. ``weight`` and ``orders_10s``:
        what the request costs when it costs more than one (a batch: 5 IP weight, 5 on the
        10 s order window): it must fit whole under the limit.
        """
        now = self.clock()
        if now < self.banned_until:
            self._refuse(-1003, "IP banned (418)", path, self.banned_until)
        if now < self.weight_blocked_until:
            self._refuse(-1003, "request weight spent (429)", path, self.weight_blocked_until)
        share = 1.0 if essential else self.headroom
        if (
            now - self._weight_at < 60
            and self.used_weight + max(weight, 1) - 1 >= share * self.weight_limit
        ):
            self._refuse(-1003, "request weight budget", path, self._weight_at + 60)
        if order:
            if now < self.orders_blocked_until:
                self._refuse(-1015, "order rate spent (429)", path, self.orders_blocked_until)
            if (
                now - self._orders_at < 10
                and self.orders_10s + orders_10s - 1 >= share * self.orders_10s_limit
            ):
                self._refuse(-1015, "order count budget (10s)", path, self._orders_at + 10)
            if now - self._orders_at < 60 and self.orders_1m >= share * self.orders_1m_limit:
                self._refuse(-1015, "order count budget (1m)", path, self._orders_at + 60)

    def _refuse(self, code: int, msg: str, path: str, until: float) -> None:
        self.stats["throttled_locally"] += 1
        raise Throttled(code, msg, path, until)

    def on_429(self, code: int, retry_after: float | None) -> float:
        self.stats["429"] += 1
        now = self.clock()
        if code == -1015:
            until = now + (retry_after if retry_after is not None else 10.0)
            self.orders_blocked_until = max(self.orders_blocked_until, until)
        else:
            until = now + (retry_after if retry_after is not None else 60.0)
            self.weight_blocked_until = max(self.weight_blocked_until, until)
        return until

    def on_418(self, retry_after: float | None, msg: str, server_ms: int) -> float:
        self.stats["418"] += 1
        now = self.clock()
        wait = retry_after
        m = _BANNED_UNTIL.search(msg)
        if wait is None and m is not None and server_ms:
            wait = max(1.0, (int(m.group(1)) - server_ms) / 1000)
        until = now + (wait if wait is not None else 120.0)
        self.banned_until = max(self.banned_until, until)
        return until

    def describe(self) -> dict[str, Any]:
        return {
            "used_weight_1m": self.used_weight,
            "orders_10s": self.orders_10s,
            "orders_1m": self.orders_1m,
            **self.stats,
        }


class RestClient:
    """Binance USDⓈ-M REST over keep-alive HTTP/1.1 connections (``Http11Pool``)."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        retries: int = 3,
        budget: RateBudget | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._creds = credentials
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self.retries = retries
        self.budget = budget or RateBudget()
        self._pool = Http11Pool(self.base_url)
        self._prefix = self._pool_path_prefix(self.base_url)
        # pre-rendered header lines (the key is never in an error text: only these bytes)
        self._key_header = (
            f"X-MBX-APIKEY: {credentials.api_key}\r\n".encode() if credentials else b""
        )
        self._form_header = (
            self._key_header + b"Content-Type: application/x-www-form-urlencoded\r\n"
        )
        #: server time - local time, ms (from ``sync_time``)
        self.time_offset_ms = 0
        self.last_server_ms = 0
        self.stats = {"requests": 0, "retries": 0, "unknown": 0, "resyncs": 0}
        #: called with (method, path) right before each request is written (bench hook)
        self.on_send: Callable[[str, str], None] | None = None
        #: tick-to-order latencies (ns) of requests sent with a ``t0_ns``
        self.latency_sink: list[int] | None = None

    @staticmethod
    def _pool_path_prefix(base_url: str) -> str:
        rest = base_url.split("://", 1)[-1]
        return rest[rest.find("/") :] if "/" in rest else ""

    async def aclose(self) -> None:
        await self._pool.aclose()

    # -- clock ---------------------------------------------------------------------------

    def timestamp_ms(self) -> int:
        # a little in the past, so a request is never "1000 ms ahead of the server"
        return int(time.time() * 1000) + self.time_offset_ms - 100

    async def sync_time(self) -> int:
        """Measure the offset to the server clock (ref/binance.md §2.3); returns it in ms."""
        t0 = time.time()
        body = await self.request("GET", "/fapi/v1/time")
        t1 = time.time()
        server = msgspec.json.decode(body, type=dict[str, int])["serverTime"]
        self.time_offset_ms = int(server - (t0 + t1) * 500)
        self.last_server_ms = server
        self.stats["resyncs"] += 1
        return self.time_offset_ms

    # -- the one request path ------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, object]] = (),
        *,
        signed: bool = False,
        key: bool = False,
        order: bool = False,
        essential: bool = False,
        t0_ns: int = 0,
        cost: tuple[int, int] = (1, 1),
    ) -> bytes:
        """Send one request; the body of a 2xx answer, or raise (see the module docstring).

        ``cost``: (IP weight, 10 s order count) the rate budget must have room for (a batch:
        (5, 5)).

        With ``t0_ns`` (the ``perf_counter_ns`` of the market frame that caused it) and a
        ``latency_sink``, the time from that frame to the request's last byte handed to the
        socket is recorded.
        """
        mutating = method in ("POST", "PUT")
        if mutating and path == "/fapi/v1/listenKey":
            mutating = False  # idempotent: POST returns the same key, PUT extends it
        if path == "/fapi/v1/countdownCancelAll":
            mutating = False  # replaces the running timer: safe to repeat
        attempt = 0
        resynced = False
        while True:
            self.budget.check(path, order, essential, *cost)
            url, content, ts = self._build(method, path, params, signed)
            headers = (
                self._form_header
                if content is not None
                else (self._key_header if (key or signed) else b"")
            )
            data = self._pool.render(method, self._prefix + url, headers, content)
            self.stats["requests"] += 1
            if self.on_send is not None:
                self.on_send(method, path)
            on_written = None
            if t0_ns and self.latency_sink is not None:
                on_written = _written_hook(t0_ns, self.latency_sink)
            try:
                with trio.fail_after(self.timeout_s):
                    resp = await self._pool.request(data, on_written)
            except ConnectFailed:
                # nothing was sent: safe to retry any request
                if attempt >= self.retries:
                    raise RestError(0, -1001, "cannot connect", path) from None
                attempt += 1
                self.stats["retries"] += 1
                await trio.sleep(0.2 * 2**attempt)
                continue
            except (trio.TooSlowError, SendFailed) as e:
                what = "ReadTimeout" if isinstance(e, trio.TooSlowError) else "TransportError"
                if mutating:
                    self.stats["unknown"] += 1
                    raise OutcomeUnknown(path, what, ts) from None
                if attempt >= self.retries:
                    raise RestError(0, -1007, f"no answer ({what})", path) from None
                attempt += 1
                self.stats["retries"] += 1
                await trio.sleep(0.2 * 2**attempt)
                continue
            self.budget.observe(resp.headers)
            status = resp.status
            if status < 300:
                return resp.body
            err = parse_error(resp.body) or ApiError(-1000, resp.reason)
            if status == 429:
                until = self.budget.on_429(err.code, _retry_after(resp))
                raise Throttled(err.code, err.msg, path, until)
            if status == 418:
                until = self.budget.on_418(
                    _retry_after(resp), err.msg, int(time.time() * 1000) + self.time_offset_ms
                )
                raise Throttled(err.code, err.msg, path, until)
            if err.code in (-1021, -5028) and not resynced:
                # refused before matching: resync the clock and try once more
                resynced = True
                await self.sync_time()
                continue
            if status >= 500 or err.code in (-1006, -1007):
                if mutating:
                    self.stats["unknown"] += 1
                    raise OutcomeUnknown(path, f"HTTP {status} {err.code}", ts)
                if attempt < self.retries:
                    attempt += 1
                    self.stats["retries"] += 1
                    await trio.sleep(0.2 * 2**attempt)
                    continue
            raise RestError(status, err.code, err.msg, path)

    def _build(
        self, method: str, path: str, params: Sequence[tuple[str, object]], signed: bool
    ) -> tuple[str, bytes | None, int]:
        """The request's target and body, and the ``timestamp`` it is signed with (0: none)."""
        ts = 0
        if signed:
            if self._creds is None:
                raise RestError(0, -2015, "no API credentials for a signed request", path)
            ts = self.timestamp_ms()
            params = [*params, ("recvWindow", self.recv_window_ms), ("timestamp", ts)]
        query = encode_params(params)
        if signed:
            assert self._creds is not None
            query = f"{query}&signature={self._creds.sign(query.encode())}"
        if method in ("POST", "PUT"):
            return path, query.encode(), ts
        return (f"{path}?{query}" if query else path), None, ts

    # -- endpoints -----------------------------------------------------------------------

    async def exchange_info(self) -> bytes:
        return await self.request("GET", "/fapi/v1/exchangeInfo")

    async def depth(self, symbol: str, limit: int = 1000) -> bytes:
        return await self.request(
            "GET", "/fapi/v1/depth", [("symbol", symbol), ("limit", limit)], essential=True
        )

    async def klines(self, symbol: str, interval: str, limit: int) -> bytes:
        """``GET /fapi/v1/klines``: the last ``limit`` candles, the forming one last."""
        return await self.request(
            "GET",
            "/fapi/v1/klines",
            [("symbol", symbol), ("interval", interval), ("limit", limit)],
            essential=True,
        )

    async def new_order(self, params: Sequence[tuple[str, object]]) -> bytes:
        return await self.request("POST", "/fapi/v1/order", params, signed=True, order=True)

    async def batch_orders(self, orders: Sequence[Mapping[str, str]], t0_ns: int = 0) -> bytes:
        """``POST /fapi/v1/batchOrders`` (at most 5 orders; the answer has one element per
        order, in request order: an order or a ``{code, msg}`` error). A timeout or 5xx raises
        ``OutcomeUnknown`` for the whole batch: every order in it is of unknown status."""
        if not 1 <= len(orders) <= 5:
            raise ValueError(f"a batch holds 1 to 5 orders, not {len(orders)}")
        text = msgspec.json.encode(orders).decode()
        return await self.request(
            "POST",
            "/fapi/v1/batchOrders",
            [("batchOrders", text)],
            signed=True,
            order=True,
            t0_ns=t0_ns,
            cost=(5, 5),
        )

    async def amend_order(self, params: Sequence[tuple[str, object]], t0_ns: int = 0) -> bytes:
        return await self.request(
            "PUT", "/fapi/v1/order", params, signed=True, order=True, t0_ns=t0_ns
        )

    async def cancel_order(self, symbol: str, client_id: str, t0_ns: int = 0) -> bytes:
        return await self.request(
            "DELETE",
            "/fapi/v1/order",
            [("symbol", symbol), ("origClientOrderId", client_id)],
            signed=True,
            essential=True,
            t0_ns=t0_ns,
        )

    async def batch_cancel(self, symbol: str, client_ids: Sequence[str], t0_ns: int = 0) -> bytes:
        """``DELETE /fapi/v1/batchOrders`` by client order id (at most 10; IP weight 1): one
        element per id, in request order: the order or a ``{code, msg}`` error."""
        if not 1 <= len(client_ids) <= 10:
            raise ValueError(f"a cancel batch holds 1 to 10 ids, not {len(client_ids)}")
        return await self.request(
            "DELETE",
            "/fapi/v1/batchOrders",
            [
                ("symbol", symbol),
                ("origClientOrderIdList", msgspec.json.encode(list(client_ids)).decode()),
            ],
            signed=True,
            essential=True,
            t0_ns=t0_ns,
        )

    async def cancel_all(self, symbol: str) -> bytes:
        return await self.request(
            "DELETE", "/fapi/v1/allOpenOrders", [("symbol", symbol)], signed=True, essential=True
        )

    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> bytes:
        return await self.request(
            "POST",
            "/fapi/v1/countdownCancelAll",
            [("symbol", symbol), ("countdownTime", countdown_ms)],
            signed=True,
            essential=True,
        )

    async def income(self, income_type: str, start_ms: int, limit: int = 1000) -> bytes:
        """``GET /fapi/v1/income`` rows of one type since ``start_ms`` (weight 30)."""
        return await self.request(
            "GET",
            "/fapi/v1/income",
            [("incomeType", income_type), ("startTime", start_ms), ("limit", limit)],
            signed=True,
        )

    async def query_order(self, symbol: str, client_id: str) -> bytes:
        return await self.request(
            "GET",
            "/fapi/v1/order",
            [("symbol", symbol), ("origClientOrderId", client_id)],
            signed=True,
            essential=True,
        )

    async def open_orders(self, symbol: str) -> bytes:
        return await self.request(
            "GET", "/fapi/v1/openOrders", [("symbol", symbol)], signed=True, essential=True
        )

    async def user_trades(self, symbol: str, order_id: int) -> bytes:
        return await self.request(
            "GET",
            "/fapi/v1/userTrades",
            [("symbol", symbol), ("orderId", order_id)],
            signed=True,
            essential=True,
        )

    async def positions(self) -> bytes:
        return await self.request("GET", "/fapi/v3/positionRisk", signed=True, essential=True)

    async def balances(self) -> bytes:
        return await self.request("GET", "/fapi/v3/balance", signed=True, essential=True)

    async def new_listen_key(self) -> str:
        body = await self.request("POST", "/fapi/v1/listenKey", key=True, essential=True)
        return str(msgspec.json.decode(body, type=dict[str, Any])["listenKey"])

    async def keepalive_listen_key(self) -> None:
        await self.request("PUT", "/fapi/v1/listenKey", key=True, essential=True)


def _written_hook(t0_ns: int, sink: list[int]) -> Callable[[], None]:
    perf = time.perf_counter_ns

    def written() -> None:
        sink.append(perf() - t0_ns)

    return written


def _retry_after(resp: HttpAnswer) -> float | None:
    v = resp.headers.get("retry-after")
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None
