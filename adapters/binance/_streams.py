"""trio tasks for Binance's WebSocket market streams and user data stream.

Theory of operation
-------------------
Each task owns one connection and loops forever: connect, report ``UP``, read frames, turn
them into events with the pure parsers and hand them to ``emit``; on any failure report
``DOWN`` with the reason, back off (0.5 s doubling to 30 s, reset after a minute of health)
and reconnect. The book itself is never resynced here: the engine buffers depth diffs, sees
the ``pu`` chain break after a reconnect and asks for a REST snapshot (a ``RequestSnapshot``
intent the executor serves), exactly the futures procedure of ref/binance.md §3.3.

* 24 h rotation: a connection is closed and reopened after ``rotate_after_s`` (23 h), before
  the server's own cut.
* Liveness: pings from the server are answered (trio-websocket on the user stream,
  ``WsConn`` on the market streams); if no frame arrives for ``stale_after_s`` the task pings
  and reconnects when the pong does not come back.
* User stream: a listenKey from ``POST /fapi/v1/listenKey``, kept alive with ``PUT`` every
  ``keepalive_s``; a ``-1125`` answer or a ``listenKeyExpired`` message means a new key and a
  new connection. After **every** (re)connection ``on_connected`` runs: the runtime's REST
  catch-up, because events sent while we were away are lost (§4.1).

Every frame's receive time (``perf_counter_ns``) travels with its event, for the
tick-to-order latency figure.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from engine import Event

from ._parse import MarketParser
from ._rest import RestClient, RestError
from ._user import LISTEN_KEY_EXPIRED, UserParser
from ._wsconn import WsClosed, WsConn

__all__ = [
    "Emit",
    "StateChange",
    "StreamConfig",
    "market_stream_urls",
    "run_market_stream",
    "run_user_stream",
]

#: hand one event to the runtime, with the frame's receive time (perf_counter_ns)
Emit = Callable[[Event, int], Awaitable[None]]
#: (stream name, up?, reason)
StateChange = Callable[[str, bool, str], Awaitable[None]]

_RECONNECT_ERRORS = (
    ConnectionClosed,
    HandshakeError,
    WsClosed,
    OSError,
    trio.BrokenResourceError,
)


class StreamConfig:
    def __init__(
        self,
        rotate_after_s: float = 23 * 3600,
        stale_after_s: float = 30.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        keepalive_s: float = 1800.0,
    ) -> None:
        self.rotate_after_s = rotate_after_s
        self.stale_after_s = stale_after_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.keepalive_s = keepalive_s


def market_stream_urls(
    ws_url: str,
    symbols: list[str],
    *,
    routed: bool = True,
    kline: str = "1m",
    candles: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """Combined-stream URLs: ``/public`` (depth, bookTicker) and ``/market`` (the rest).

    Every symbol gets ``kline`` candles (if set); ``candles`` adds (symbol, interval) pairs
    a strategy needs (the grid's volume breaker)."""
    base = ws_url.rstrip("/")
    public, market = [], []
    for s in symbols:
        low = s.lower()
        public += [f"{low}@depth@100ms", f"{low}@bookTicker"]
        market += [f"{low}@aggTrade", f"{low}@markPrice@1s"]
        if kline:
            market.append(f"{low}@kline_{kline}")
    for s, interval in candles:
        name = f"{s.lower()}@kline_{interval}"
        if name not in market:
            market.append(name)
    if not routed:
        return {"market": f"{base}/stream?streams={'/'.join(public + market)}"}
    return {
        "public": f"{base}/public/stream?streams={'/'.join(public)}",
        "market": f"{base}/market/stream?streams={'/'.join(market)}",
    }


class _Backoff:
    def __init__(self, cfg: StreamConfig) -> None:
        self.cfg = cfg
        self.delay = cfg.backoff_initial_s
        self.healthy_since = 0.0

    def connected(self) -> None:
        self.healthy_since = time.monotonic()

    async def wait(self) -> None:
        if self.healthy_since and time.monotonic() - self.healthy_since > 60:
            self.delay = self.cfg.backoff_initial_s
        await trio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cfg.backoff_max_s)


async def _read(ws: WebSocketConnection, stale_after_s: float) -> str | bytes:
    """The next frame; pings when the line has been quiet (raises if the pong never comes)."""
    while True:
        with trio.move_on_after(stale_after_s):
            return await ws.get_message()
        with trio.fail_after(stale_after_s):
            await ws.ping()


async def _read_batch(ws: WsConn, stale_after_s: float) -> list[bytes]:
    """The frames that have arrived (one socket read); pings when the line has been quiet
    (raises ``trio.TooSlowError`` if nothing at all comes back)."""
    with trio.move_on_after(stale_after_s):
        return await ws.receive_messages()
    await ws.ping()
    with trio.fail_after(stale_after_s):
        return await ws.receive_messages()  # the pong (or anything) proves the line alive


async def run_market_stream(
    name: str,
    url: str,
    parser: MarketParser,
    emit: Emit,
    on_state: StateChange,
    cfg: StreamConfig | None = None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Read one combined market stream forever (see the module docstring).

    Market streams are the firehose (Binance's depth@0ms + bookTicker + trades can reach
    thousands of frames a second): they are read with ``WsConn``, every frame of one socket
    read parsed and handed on in one go, with one receive time for all of them (they
    arrived together)."""
    cfg = cfg or StreamConfig()
    backoff = _Backoff(cfg)
    started = False
    perf = time.perf_counter_ns
    parse = parser.parse_combined
    skipped = parser.skipped
    while True:
        reason = "rotation"
        try:
            ws = await WsConn.connect(url)
            try:
                backoff.connected()
                await on_state(name, True, "")
                if not started:
                    started = True
                    task_status.started()
                with trio.move_on_after(cfg.rotate_after_s):
                    while True:
                        msgs = await _read_batch(ws, cfg.stale_after_s)
                        t0 = perf()
                        for raw in msgs:
                            try:
                                ev = parse(raw)
                            except (ValueError, KeyError):  # off-grid value, unknown symbol
                                skipped["malformed"] = skipped.get("malformed", 0) + 1
                                continue
                            if ev is not None:
                                await emit(ev, t0)
            finally:
                with trio.CancelScope(shield=True):
                    await ws.aclose()
        except* (*_RECONNECT_ERRORS, trio.TooSlowError) as group:
            reason = _reason(group)
        await on_state(name, False, reason)
        if reason != "rotation":
            await backoff.wait()


async def run_user_stream(
    rest: RestClient,
    ws_url: str,
    parser: UserParser,
    emit: Emit,
    on_state: StateChange,
    on_connected: Callable[[], Awaitable[None]],
    cfg: StreamConfig | None = None,
    *,
    routed: bool = True,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The user data stream forever: listenKey, keepalive, expiry, catch-up after connecting."""
    cfg = cfg or StreamConfig()
    backoff = _Backoff(cfg)
    started = False
    base = ws_url.rstrip("/")
    perf = time.perf_counter_ns
    while True:
        reason = "rotation"
        try:
            key = await rest.new_listen_key()
            url = f"{base}/private/ws/{key}" if routed else f"{base}/ws/{key}"
            async with open_websocket_url(url) as ws, trio.open_nursery() as nursery:
                backoff.connected()
                renew = trio.CancelScope()
                nursery.start_soon(_keepalive, rest, cfg.keepalive_s, renew)
                await on_state("user", True, "")
                # the connection is open, so nothing from now on is missed: catch up on
                # what happened while we were not listening
                await on_connected()
                if not started:
                    started = True
                    task_status.started()
                with renew, trio.move_on_after(cfg.rotate_after_s):
                    while True:
                        msg = await _read(ws, cfg.stale_after_s)
                        t0 = perf()
                        out = parser.parse(msg)
                        if out == LISTEN_KEY_EXPIRED:
                            reason = "listenKeyExpired"
                            break
                        for ev in out:
                            await emit(ev, t0)  # type: ignore[arg-type]
                if renew.cancelled_caught:
                    reason = "listen key gone (-1125)"
                nursery.cancel_scope.cancel()
        except* (*_RECONNECT_ERRORS, trio.TooSlowError, RestError) as group:
            reason = _reason(group)
        await on_state("user", False, reason)
        if reason not in ("rotation", "listenKeyExpired", "listen key gone (-1125)"):
            await backoff.wait()


async def _keepalive(rest: RestClient, every_s: float, renew: trio.CancelScope) -> None:
    while True:
        await trio.sleep(every_s)
        try:
            await rest.keepalive_listen_key()
        except RestError as e:
            if e.code == -1125:
                renew.cancel()
                return


def _reason(group: BaseExceptionGroup[BaseException]) -> str:
    e = group.exceptions[0]
    while isinstance(e, BaseExceptionGroup):
        e = e.exceptions[0]
    return f"{type(e).__name__}: {_short(e)}"


def _short(e: BaseException) -> str:
    text = str(e)
    # a listen key in a URL is a bearer token for the account's stream: keep it out of logs
    if "/ws/" in text:
        text = text.split("/ws/")[0] + "/ws/<key>"
    return text[:160]
