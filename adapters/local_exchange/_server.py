"""The trio server: sockets, the market clock, stream fan-out, faults, the control API.

Theory of operation
-------------------
Everything runs in one trio task group and every mutation of the exchange happens in
synchronous code between two awaits, so the core needs no locks: a REST request, a WS-API
request, a market event or a timer tick is applied whole, then the stream messages it
produced (``core.user_out``, ``core.market_out``) are put on each subscribed connection's
queue. Each WebSocket connection has its own sender task, so a slow client only delays
itself (a client more than ``queue_size`` messages behind is cut, as Binance does).

Time: ``now()`` is the injected clock (default: wall clock) plus the clock-skew fault.
Market events carry market time; at start the first one is pinned to ``now()`` and the rest
follow at ``speed`` (events are re-stamped, so E/T fields and funding times are server
times). With ``feed="manual"`` nothing moves until the owner calls ``pump()``: tests drive
the market event by event and set a manual clock.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import msgspec
import trio
import trio_websocket

from engine import (
    FORMAT_VERSION,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    Intent,
    JournalHeader,
    KlineUpdated,
    MarkPriceUpdated,
    TopOfBookUpdated,
    TradePrinted,
    registry_hash,
)
from replay.sim import SimConfig

from . import _wire as wire
from ._core import LocalExchange
from ._faults import WS_KINDS, Faults
from ._http import HttpAnswer, HttpRequest, PrefixedStream, serve_connection
from ._market import MarketSource, open_market

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "ExchangeConfig",
    "ExchangeServer",
    "open_exchange",
    "serve_exchange",
]

_MS = 1_000_000
_S = 1_000_000_000
#: how often the exchange's own journal is committed (written and synced), in seconds
_COMMIT_S = 0.1

#: the local exchange's default credentials: public test values, not secrets
DEFAULT_API_KEY = "replaymm-local-key"
DEFAULT_API_SECRET = "replaymm-local-secret"

_PUBLIC_KINDS = ("depth", "bookTicker")
_MARKET_KINDS = ("aggTrade", "trade", "markPrice", "markPrice@1s", "kline_")


@dataclass
class ExchangeConfig:
    """How to run the local exchange (``replaymm exchange`` flags map one to one)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (see ``ExchangeServer.port``)
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT"])
    #: "synthetic", a journal directory, or a recorded Binance WebSocket file
    market: str = "synthetic"
    speed: float = 1.0
    #: "realtime": the market plays on the clock; "manual": only ``pump()`` moves it
    feed: str = "realtime"
    seed: int = 7
    sim: SimConfig = field(default_factory=SimConfig)
    api_key: str = DEFAULT_API_KEY
    api_secret: str = field(default=DEFAULT_API_SECRET, repr=False)
    listen_key_ttl_s: float = 3600.0
    #: a directory for the exchange's own journal ("" = none)
    journal: str = ""
    faults: Faults = field(default_factory=Faults)
    #: per-connection outgoing queue; a client further behind is disconnected
    queue_size: int = 20_000

    def __post_init__(self) -> None:
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the local exchange listens on loopback only (127.0.0.1)")
        if not self.speed > 0:
            raise ValueError("speed must be > 0")
        if self.feed not in ("realtime", "manual"):
            raise ValueError("feed must be 'realtime' or 'manual'")


class _Conn:
    """One WebSocket connection and its outgoing queue."""

    __slots__ = ("combined", "kind", "names", "recv", "send", "stream", "ws")

    def __init__(
        self, kind: str, ws: trio_websocket.WebSocketConnection, stream: PrefixedStream, size: int
    ) -> None:
        self.kind = kind  # "public" | "market" | "legacy" | "user" | "ws-api"
        self.ws = ws
        self.stream = stream
        self.combined = False
        #: (symbol, kind) -> the stream names this connection subscribed for it
        self.names: dict[tuple[str, str], list[str]] = {}
        self.send, self.recv = trio.open_memory_channel[tuple[str, bytes]](size)

    @property
    def fault_kind(self) -> str:
        return {"public": "market", "market": "market", "legacy": "market"}.get(
            self.kind, self.kind
        )


class ExchangeServer:
    """A running local exchange. Made by ``serve_exchange``; the control API is its methods."""

    def __init__(self, config: ExchangeConfig, clock: Callable[[], int] | None = None) -> None:
        self.config = config
        self._clock = clock or time.time_ns
        self.faults = config.faults
        self.port = 0
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        scratch = None
        if config.market not in ("synthetic",) and not Path(config.market).is_dir():
            self._scratch = tempfile.TemporaryDirectory(prefix="replaymm-exchange-")
            scratch = Path(self._scratch.name)
        start = self.now()
        self.source: MarketSource = open_market(
            config.market,
            symbols=config.symbols,
            seed=config.seed,
            start_ns=start - start % _MS,
            scratch=scratch,
        )
        self._writer: Any = None
        self._last_seq = 0
        journal_cb = None
        if config.journal:
            journal_cb = self._open_journal(Path(config.journal))
        self.core = LocalExchange(
            self.source.instruments,
            config.sim,
            api_key=config.api_key,
            api_secret=config.api_secret,
            faults=self.faults,
            listen_key_ttl_s=config.listen_key_ttl_s,
            seed=config.seed,
            journal=journal_cb,
        )
        for spec in self.source.instruments:
            self.core.on_market(start, spec)
        self._subs: dict[tuple[str, str], set[_Conn]] = {}
        self._users: set[_Conn] = set()
        self._conns: set[_Conn] = set()
        self._pending: tuple[int, Event] | None = None
        self._m0 = -1  # market time pinned to...
        self._b0 = 0  # ... this server time
        self.market_done = False
        self.stats: dict[str, int] = {
            "messages": 0,
            "market_events": 0,
            "connections": 0,
            "dropped_slow": 0,
        }
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------------------------
    # time and the market

    def now(self) -> int:
        return self._clock() + self.faults.skew_ms * _MS

    def _due(self, t: int) -> int:
        if self._m0 < 0:
            self._m0, self._b0 = t, self.now()
        return self._b0 + int((t - self._m0) / self.config.speed)

    def _restamp(self, ev: Event) -> Event:
        kind = type(ev)
        if kind in (TopOfBookUpdated, BookDeltaReceived, TradePrinted, BookSnapshotReceived):
            return msgspec.structs.replace(ev, ts_ns=self._due(ev.ts_ns))  # type: ignore[type-var]
        if kind is MarkPriceUpdated:
            return msgspec.structs.replace(
                ev, ts_ns=self._due(ev.ts_ns), next_funding_ns=self._due(ev.next_funding_ns)
            )
        if kind is KlineUpdated:
            return msgspec.structs.replace(
                ev,
                ts_ns=self._due(ev.ts_ns),
                open_ns=self._due(ev.open_ns),
                close_ns=self._due(ev.close_ns),
            )
        return ev

    def _next_market(self) -> tuple[int, Event] | None:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        try:
            return next(self.source.events)
        except StopIteration:
            self.market_done = True
            return None

    def pump(self, n: int = 1) -> int:
        """Apply the next ``n`` market events now (manual feed); returns how many were left."""
        done = 0
        for _ in range(n):
            item = self._next_market()
            if item is None:
                break
            t, ev = item
            due = self._due(t)
            self._apply_market(max(due, 0), self._restamp(ev))
            done += 1
        self._flush()
        return done

    def _apply_market(self, now: int, ev: Event) -> None:
        self.stats["market_events"] += 1
        self.core.on_market(now, ev)

    async def _feed(self) -> None:
        while True:
            item = self._next_market()
            if item is None:
                return
            t, ev = item
            due = self._due(t)
            wait = due - self.now()
            if wait > 0:
                self._flush()
                self._pending = item
                await trio.sleep(wait / _S)
                continue
            self._apply_market(self.now(), self._restamp(ev))
            if self.stats["market_events"] % 64 == 0:
                self._flush()
                await trio.lowlevel.checkpoint()

    async def _timers(self) -> None:
        last_commit = trio.current_time()
        while True:
            await trio.sleep(0.01)
            self.core.on_timer(self.now())
            self._flush()
            # the journal's tail reaches the disk on time, market or no market
            if self._writer is not None and trio.current_time() - last_commit >= _COMMIT_S:
                last_commit = trio.current_time()
                self._writer.commit()

    # ------------------------------------------------------------------------------------
    # delivery

    def _flush(self) -> None:
        core = self.core
        if core.market_out:
            out, core.market_out = core.market_out, []
            for sym, kind, data in out:
                conns = self._subs.get((sym, kind))
                if not conns:
                    continue
                payload = wire.encode(data)
                for c in list(conns):
                    for name in c.names.get((sym, kind), ()):
                        msg = (
                            b'{"stream":"' + name.encode() + b'","data":' + payload + b"}"
                            if c.combined
                            else payload
                        )
                        self._enqueue(c, msg)
        if core.user_out:
            out_u, core.user_out = core.user_out, []
            for data in out_u:
                payload = wire.encode(data)
                expired = data.get("e") == "listenKeyExpired"
                for c in list(self._users):
                    self._enqueue(c, payload)
                    if expired:
                        self._users.discard(c)

    def _enqueue(self, c: _Conn, msg: bytes) -> None:
        try:
            c.send.send_nowait((c.fault_kind, msg))
        except trio.WouldBlock:
            self.stats["dropped_slow"] += 1
            self._cut(c)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._forget(c)

    def _forget(self, c: _Conn) -> None:
        self._conns.discard(c)
        self._users.discard(c)
        for key in c.names:
            s = self._subs.get(key)
            if s is not None:
                s.discard(c)
        c.names.clear()
        c.send.close()

    def _cut(self, c: _Conn) -> None:
        """Drop a connection without a close frame (fault, or a client too far behind)."""
        self._forget(c)
        if self._nursery is not None:
            self._nursery.start_soon(_abort, c)

    async def _sender(self, c: _Conn) -> None:
        faults = self.faults
        async with c.recv:
            async for kind, msg in c.recv:
                if faults.take_drop(kind):
                    continue
                delay = faults.delay_ms.get(kind, 0.0)
                if delay:
                    await trio.sleep(delay / 1000)
                try:
                    await c.ws.send_message(msg.decode())
                except (
                    trio_websocket.ConnectionClosed,
                    trio.BrokenResourceError,
                    trio.ClosedResourceError,
                ):
                    self._forget(c)
                    return
                self.stats["messages"] += 1

    # ------------------------------------------------------------------------------------
    # HTTP

    async def _on_http(self, req: HttpRequest) -> HttpAnswer:
        if req.path.startswith("/control/"):
            return self._control_http(req)
        r = self.core.rest(
            req.method, req.path, req.query, req.body, req.headers.get("x-mbx-apikey"), self.now()
        )
        self._flush()
        return HttpAnswer(r.status, r.body, r.headers, r.hang)

    # ------------------------------------------------------------------------------------
    # WebSockets

    async def _on_websocket(self, stream: PrefixedStream) -> None:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(10):
                    request = await trio_websocket.wrap_server_stream(nursery, stream)
            except (trio.TooSlowError, trio_websocket.HandshakeError, trio.BrokenResourceError):
                nursery.cancel_scope.cancel()
                return
            path, _, query = request.path.partition("?")
            qs = parse_qs(query)
            parts = [p for p in path.split("/") if p]
            route = parts[0] if parts else ""
            if route == "ws-fapi":
                kind = "ws-api"
            elif route == "private" or (
                route in ("ws", "stream") and self._is_listen_key(parts, qs)
            ):
                kind = "user"
            elif route in ("public", "market"):
                kind = route
            elif route in ("ws", "stream"):
                kind = "legacy"
            else:
                await request.reject(404)
                nursery.cancel_scope.cancel()
                return
            if kind == "user" and not self._user_key_ok(parts, qs):
                await request.reject(
                    400, body=b'{"code":-1125,"msg":"This listenKey does not exist."}'
                )
                nursery.cancel_scope.cancel()
                return
            ws = await request.accept()
            c = _Conn(kind, ws, stream, self.config.queue_size)
            self._conns.add(c)
            self.stats["connections"] += 1
            nursery.start_soon(self._sender, c)
            try:
                if kind == "ws-api":
                    await self._ws_api_loop(c)
                else:
                    if kind == "user":
                        self._users.add(c)
                    else:
                        c.combined = "stream" in parts[:2]
                        names = (
                            qs.get("streams", [""])[0].split("/")
                            if c.combined
                            else parts[2:]
                            if route != "ws"
                            else parts[1:]
                        )
                        self._subscribe(c, [n for n in names if n])
                    await self._stream_loop(c)
            except (
                trio_websocket.ConnectionClosed,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
            ):
                pass
            finally:
                self._forget(c)
                nursery.cancel_scope.cancel()
                with trio.move_on_after(1) as scope:
                    scope.shield = True
                    await ws.aclose()

    def _is_listen_key(self, parts: list[str], qs: dict[str, list[str]]) -> bool:
        key = self.core.listen_key
        return bool(key) and (key in parts or key in qs.get("listenKey", []))

    def _user_key_ok(self, parts: list[str], qs: dict[str, list[str]]) -> bool:
        key = self.core.listen_key
        given = qs.get("listenKey", [])
        if len(parts) >= 3 and parts[1] == "ws":
            given = [*given, parts[2]]
        elif len(parts) == 2 and parts[0] == "ws":
            given = [*given, parts[1]]
        return bool(key) and key in given

    def _allowed(self, c: _Conn, kind: str) -> bool:
        """Binance's routing: a stream on the wrong path is accepted and stays silent."""
        public = kind.startswith("depth") or kind == "bookTicker"
        if c.kind in ("public", "legacy"):
            return public
        return not public

    def _subscribe(self, c: _Conn, names: list[str]) -> None:
        for name in names:
            sym, _, rest = name.partition("@")
            if rest.startswith("depth"):
                tail = rest[5:]
                kind = (
                    "depth"
                    if tail in ("", "@0ms", "@100ms", "@250ms", "@500ms")
                    else "depth" + tail
                )
                if kind != "depth":  # partial book depth5/10/20[@100ms|@500ms]
                    self.core.want_depth(sym, kind)
            elif rest.startswith("kline_"):
                kind = rest
                self.core.want_kline(sym, rest[6:])
            else:
                kind = rest
            key = (sym.lower(), kind)
            names_for = c.names.setdefault(key, [])
            if name not in names_for:
                names_for.append(name)
            if self._allowed(c, kind):
                self._subs.setdefault(key, set()).add(c)

    def _unsubscribe(self, c: _Conn, names: list[str]) -> None:
        for key, lst in list(c.names.items()):
            for name in names:
                if name in lst:
                    lst.remove(name)
            if not lst:
                del c.names[key]
                s = self._subs.get(key)
                if s is not None:
                    s.discard(c)

    async def _stream_loop(self, c: _Conn) -> None:
        while True:
            text = await c.ws.get_message()
            try:
                req = msgspec.json.decode(text)
                method = req["method"]
                rid = req.get("id")
            except (msgspec.DecodeError, KeyError, TypeError):
                await self._reply(c, {"code": 2, "msg": "Invalid request: invalid JSON"})
                continue
            params = req.get("params") or []
            if method == "SUBSCRIBE" and c.kind != "user":
                self._subscribe(c, [str(p) for p in params])
                await self._reply(c, {"result": None, "id": rid})
            elif method == "UNSUBSCRIBE" and c.kind != "user":
                self._unsubscribe(c, [str(p) for p in params])
                await self._reply(c, {"result": None, "id": rid})
            elif method == "LIST_SUBSCRIPTIONS":
                await self._reply(
                    c, {"result": [n for lst in c.names.values() for n in lst], "id": rid}
                )
            elif method == "SET_PROPERTY" and params and params[0] == "combined":
                c.combined = bool(params[1]) if len(params) > 1 else c.combined
                await self._reply(c, {"result": None, "id": rid})
            elif method == "GET_PROPERTY" and params and params[0] == "combined":
                await self._reply(c, {"result": c.combined, "id": rid})
            else:
                await self._reply(
                    c, {"code": 2, "msg": f"Invalid request: unknown method {method}", "id": rid}
                )

    async def _reply(self, c: _Conn, obj: dict[str, Any]) -> None:
        self._enqueue(c, wire.encode(obj))
        await trio.lowlevel.checkpoint()

    async def _ws_api_loop(self, c: _Conn) -> None:
        while True:
            text = await c.ws.get_message()
            try:
                req = msgspec.json.decode(text)
                if not isinstance(req, dict):
                    raise TypeError
            except (msgspec.DecodeError, TypeError):
                await self._reply(
                    c, {"id": None, "status": 400, "error": {"code": -1000, "msg": "Invalid JSON."}}
                )
                continue
            answer = self.core.ws_api(req, self.now())
            self._flush()
            if answer is not None:
                await self._reply(c, answer)

    # ------------------------------------------------------------------------------------
    # the control API (also over HTTP: POST /control/<action> with a JSON body)

    def drop_ws(self, kind: str = "all") -> int:
        """Cut every WebSocket connection of ``kind`` (market, user, ws-api, all), no close frame."""
        if kind not in WS_KINDS:
            raise ValueError(f"kind {kind!r}: use one of {', '.join(WS_KINDS)}")
        victims = [c for c in self._conns if kind == "all" or c.fault_kind == kind]
        for c in victims:
            self._cut(c)
        self.faults._count("drop_ws:" + kind)
        return len(victims)

    def expire_listen_key(self) -> None:
        self.core.expire_listen_key(self.now())
        self._flush()

    def ban(self, seconds: float) -> None:
        """Answer 418 (IP banned) to every REST / WS-API request for ``seconds``."""
        self.faults.ban_until_ns = self.now() + int(seconds * _S)

    def status(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "market": self.source.description,
            "market_done": self.market_done,
            "connections": len(self._conns),
            "users": len(self._users),
            "open_orders": len(self.core.sim.orders),
            "listen_key_active": bool(self.core.listen_key),
            "faults": dict(self.faults.counts),
            **self.stats,
            **self.core.stats,
        }

    def control(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        """The control API by name (what ``POST /control/<action>`` calls)."""
        f = self.faults
        if action == "status":
            return self.status()
        if action == "drop_ws":
            return {"dropped": self.drop_ws(str(args.get("kind", "all")))}
        if action == "fail_orders":
            f.fail_orders(
                str(args["mode"]), int(args.get("count", 1)), str(args.get("placed", "random"))
            )
        elif action == "gap_depth":
            f.gap_depth(int(args.get("count", 1)))
        elif action == "expire_listen_key":
            self.expire_listen_key()
        elif action == "skew":
            f.skew_ms = int(args["ms"])
        elif action == "delay":
            f.delay_ms[str(args.get("kind", "market"))] = float(args["ms"])
        elif action == "drop_messages":
            f.drop_messages[str(args.get("kind", "market"))] = int(args.get("count", 1))
        elif action == "rate_limit":
            f.force_429 += int(args.get("count", 1))
        elif action == "ban":
            self.ban(float(args.get("seconds", 120)))
        elif action == "clear":
            f.clear()
        elif action == "pump":
            return {"applied": self.pump(int(args.get("count", 1)))}
        else:
            raise ValueError(f"unknown control action {action!r}")
        return {"ok": True}

    def _control_http(self, req: HttpRequest) -> HttpAnswer:
        action = req.path.removeprefix("/control/")
        try:
            args = msgspec.json.decode(req.body) if req.body else {}
            if not isinstance(args, dict):
                raise ValueError("the body must be a JSON object")
            out = self.control(action, args)
            return HttpAnswer(200, wire.encode(out), [])
        except (ValueError, KeyError, TypeError, msgspec.DecodeError) as e:
            return HttpAnswer(400, wire.encode({"error": str(e)}), [])

    # ------------------------------------------------------------------------------------
    # the exchange's own journal

    def _open_journal(self, path: Path) -> Callable[[int, Event | None, Intent | None], None]:
        from journal import Durability, JournalWriter, code_digest, code_version

        header = JournalHeader(
            format_version=FORMAT_VERSION,
            registry_hash=registry_hash(),
            code_version=code_version(),
            code_digest=code_digest(),
            kind="local-exchange",
            config={},
            instruments=list(self.source.instruments),
            source={
                "tool": "replaymm exchange",
                "market": self.source.description,
                "speed": self.config.speed,
                "sim": msgspec.to_builtins(self.config.sim),
            },
        )
        self._writer = w = JournalWriter.create(
            path, header, durability=Durability("interval", 50.0), overwrite=True
        )

        def record(now: int, ev: Event | None, intent: Intent | None) -> None:
            if ev is not None:
                self._last_seq = w.append_event(now, ev).seq
            elif intent is not None:
                w.append_intents(self._last_seq, [intent])

        return record

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    # ------------------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[ExchangeServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                listeners = await trio.open_tcp_listeners(self.config.port, host=self.config.host)
                self.port = listeners[0].socket.getsockname()[1]

                async def handle(stream: trio.SocketStream) -> None:
                    await serve_connection(stream, self._on_http, self._on_websocket)

                nursery.start_soon(trio.serve_listeners, handle, listeners)
                nursery.start_soon(self._timers)
                if self.config.feed == "realtime":
                    nursery.start_soon(self._feed)
                task_status.started(self)
        finally:
            self.close()


async def _abort(c: _Conn) -> None:
    with trio.move_on_after(1) as scope:
        scope.shield = True
        try:
            await c.stream.inner.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def serve_exchange(
    config: ExchangeConfig,
    clock: Callable[[], int] | None = None,
    *,
    task_status: trio.TaskStatus[ExchangeServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a local exchange until cancelled; ``nursery.start`` returns the running server."""
    server = ExchangeServer(config, clock)
    await server.run(task_status=task_status)


@asynccontextmanager
async def open_exchange(
    config: ExchangeConfig | None = None, *, clock: Callable[[], int] | None = None
) -> AsyncIterator[ExchangeServer]:
    """``async with open_exchange(cfg) as ex:`` a running exchange on ``ex.port``; stopped on exit."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_exchange, config or ExchangeConfig(), clock)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
