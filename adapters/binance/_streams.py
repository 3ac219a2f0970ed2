"""trio tasks for Binance's WebSocket market streams and user data stream.

Theory of operation
-------------------
Each task owns one connection and loops forever: connect, report ``UP``, read frames, turn
them into events with the pure parsers and hand them to ``emit``; on any failure report
``DOWN`` with the reason, back off (0.5 s doubling to 30 s, reset after a minute of health)
and reconnect. The book itself is never resynced here: the engine buffers depth diffs, sees
the ``pu`` chain break after a reconnect and asks for a REST snapshot (a ``RequestSnapshot``
intent the executor serves), exactly the futures procedure of ref/binance.md §3.3.

* 24 h rotation: after ``rotate_after_s`` (23 h), before the server's own cut, each stream
  opens a second connection while it still reads the first, and switches to it once the two
  carry the same frames (``_Handover``): no gap, no ``DOWN``, no book resync, no catch-up.
  If the new connection cannot be opened, the old one stays and the handover is tried again
  after ``handover_retry_s``.
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
from functools import partial
from typing import Any, Generic, TypeVar

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    connect_websocket_url,
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

C = TypeVar("C")

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
        handover_s: float = 2.0,
        handover_retry_s: float = 60.0,
    ) -> None:
        self.rotate_after_s = rotate_after_s
        self.handover_s = handover_s
        self.handover_retry_s = handover_retry_s
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
    stats: dict[str, int] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Read one combined market stream forever (see the module docstring); ``stats`` counts
    the rotations (``rotations``, ``rotations_failed``).

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
    counts = stats if stats is not None else {}

    async def read(ws: WsConn) -> list[bytes]:
        return await _read_batch(ws, cfg.stale_after_s)

    async def hand_on(msgs: list[bytes], t0: int) -> None:
        for raw in msgs:
            try:
                ev = parse(raw)
            except (ValueError, KeyError):  # off-grid value, unknown symbol
                skipped["malformed"] = skipped.get("malformed", 0) + 1
                continue
            if ev is not None:
                await emit(ev, t0)

    while True:
        try:
            ws = await WsConn.connect(url)
            try:
                backoff.connected()
                await on_state(name, True, "")
                if not started:
                    started = True
                    task_status.started()
                rotate_after = cfg.rotate_after_s
                while True:
                    # the deadline is checked between batches, not by cancelling a read: a
                    # read cancelled while it answers a ping loses the frames it holds
                    rotate_at = trio.current_time() + rotate_after
                    while trio.current_time() < rotate_at:
                        msgs = await _read_batch(ws, cfg.stale_after_s)
                        await hand_on(msgs, perf())
                    new = await _Handover(
                        ws, partial(WsConn.connect, url), read, _close_wsconn, hand_on, cfg
                    ).run()
                    if new is None:  # the new connection failed: keep this one, try later
                        counts["rotations_failed"] = counts.get("rotations_failed", 0) + 1
                        rotate_after = cfg.handover_retry_s
                        continue
                    old, ws = ws, new
                    await _close_wsconn(old)
                    counts["rotations"] = counts.get("rotations", 0) + 1
                    rotate_after = cfg.rotate_after_s
            finally:
                await _close_wsconn(ws)
        except* (*_RECONNECT_ERRORS, trio.TooSlowError) as group:
            reason = _reason(group)
        await on_state(name, False, reason)
        await backoff.wait()


class _Handover(Generic[C]):
    """A stream's rotation: a new connection is opened while the old one is still read and
    handed on; the new one's frames are held back until the old one brings a frame the new
    one already has. From that frame on the two carry the same frames in the same order
    (the exchange sends every frame to every subscriber, in one order), so the old one is
    dropped and the new one's held frames after it are handed on: nothing lost, nothing
    twice, nothing out of order.

    A frame's bytes identify it. For safety the new one's frames the old one already handed
    on are still dropped for ``GRACE_S`` after the switch. If the old one never meets the
    new one within ``handover_s`` (a quiet stream) or fails, the switch happens anyway, with
    that same check. If the new one fails, it is dropped and the old one goes on.

    ``open``/``read``/``close``: how to open a connection, read its next frames (raising a
    ``_RECONNECT_ERRORS`` or ``trio.TooSlowError`` when it fails) and close it (shielded:
    it also runs when the handover is cancelled).
    """

    #: after the switch, the new connection's frames are still checked this long against
    #: what the old one handed on
    GRACE_S = 0.5

    def __init__(
        self,
        old: C,
        open: Callable[[], Awaitable[C]],
        read: Callable[[C], Awaitable[Sequence[Any]]],
        close: Callable[[C], Awaitable[None]],
        hand_on: Callable[[list[Any], int], Awaitable[None]],
        cfg: StreamConfig,
    ) -> None:
        self.old = old
        self.open = open
        self.read = read
        self.close = close
        self.hand_on = hand_on
        self.cfg = cfg
        self.handed_on: set[Any] = set()  # the old one's frames since the handover began
        self.held: list[Any] = []  # the new one's frames, not yet handed on
        self.held_set: set[Any] = set()
        # Both readers stop between two batches, never inside a read (a cancelled read
        # can lose frames it has already taken off the socket):
        self.stop_old = False
        self.stop_new = False
        self.old_done = trio.Event()  # the old one is no longer read (met, failed or told)
        self.new_failed = False
        self.decided = trio.Event()  # the old one is done, or the new one failed
        self.old_failed = False

    async def run(self) -> C | None:
        """The new connection, the old one no longer read (the caller closes it); None if the
        new one failed and the old one is still good (read up to a batch boundary). Raises
        if both failed."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_old)
            new = await self._open_and_switch()
        if new is None and self.old_failed:
            raise WsClosed("both connections failed during a rotation")
        return new

    async def _read_old(self) -> None:
        perf = time.perf_counter_ns
        try:
            while not self.stop_old:
                msgs = await self.read(self.old)
                t0 = perf()
                handed_on, held = self.handed_on, self.held_set
                for raw in msgs:
                    handed_on.add(raw)
                    if raw in held:
                        self.stop_old = True  # met: the rest of the batch is on the new one
                await self.hand_on(list(msgs), t0)
        except (*_RECONNECT_ERRORS, trio.TooSlowError):
            self.old_failed = True
        finally:
            self.old_done.set()
            self.decided.set()

    async def _hold(self, new: C) -> None:
        try:
            while not self.stop_new:
                msgs = await self.read(new)
                self.held.extend(msgs)
                self.held_set.update(msgs)
        except (*_RECONNECT_ERRORS, trio.TooSlowError):
            self.new_failed = True
            self.decided.set()

    async def _open_and_switch(self) -> C | None:
        cfg = self.cfg
        perf = time.perf_counter_ns
        try:
            with trio.fail_after(cfg.stale_after_s):
                new = await self.open()
        except (*_RECONNECT_ERRORS, trio.TooSlowError):
            self.stop_old = True
            return None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._hold, new)
                with trio.move_on_after(cfg.handover_s):
                    await self.decided.wait()
                # the old one stops (after its current batch if still read), then the new one
                self.stop_old = True
                await self.old_done.wait()
                self.stop_new = True
            if self.new_failed:  # the old one goes on from where it stopped
                await self.close(new)
                return None
            handed_on = self.handed_on
            fresh = [raw for raw in self.held if raw not in handed_on]
            if fresh:
                await self.hand_on(fresh, perf())
            try:
                grace_until = trio.current_time() + self.GRACE_S
                while trio.current_time() < grace_until:
                    msgs = await self.read(new)
                    t0 = perf()
                    fresh = [raw for raw in msgs if raw not in handed_on]
                    if fresh:
                        await self.hand_on(fresh, t0)
            except (*_RECONNECT_ERRORS, trio.TooSlowError):
                # past the switch the old one cannot take over: reconnect
                raise WsClosed("the new connection failed right after a rotation") from None
        except BaseException:
            await self.close(new)
            raise
        return new


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
    stats: dict[str, int] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The user data stream forever: listenKey, keepalive, expiry, catch-up after connecting.

    The rotation is a handover like a market stream's (``_Handover``), to a second
    connection on the same listen key: no gap, so no ``DOWN`` and no catch-up. ``stats``
    counts ``user_rotations`` and ``user_rotations_failed``."""
    cfg = cfg or StreamConfig()
    backoff = _Backoff(cfg)
    started = False
    base = ws_url.rstrip("/")
    perf = time.perf_counter_ns
    counts = stats if stats is not None else {}
    expired = False

    async def hand_on(msgs: list[Any], t0: int) -> None:
        nonlocal expired
        for msg in msgs:
            out = parser.parse(msg)
            if out == LISTEN_KEY_EXPIRED:
                expired = True
                continue
            for ev in out:
                await emit(ev, t0)  # type: ignore[arg-type]

    async def read(ws: WebSocketConnection) -> list[Any]:
        # the handover's reads: short, so that a quiet account's handover still ends on time
        # (trio-websocket keeps a message a cancelled read did not take)
        with trio.move_on_after(0.25):
            return [await _read(ws, cfg.stale_after_s)]
        return []

    while True:
        reason = ""
        try:
            key = await rest.new_listen_key()
            url = f"{base}/private/ws/{key}" if routed else f"{base}/ws/{key}"
            async with trio.open_nursery() as nursery:
                ws = await connect_websocket_url(nursery, url)
                try:
                    backoff.connected()
                    key_gone = _KeyGone()
                    nursery.start_soon(_keepalive, rest, cfg.keepalive_s, key_gone)
                    expired = False
                    await on_state("user", True, "")
                    # the connection is open, so nothing from now on is missed: catch up on
                    # what happened while we were not listening
                    await on_connected()
                    if not started:
                        started = True
                        task_status.started()
                    rotate_after = cfg.rotate_after_s
                    while True:
                        with trio.move_on_after(rotate_after) as scope:
                            key_gone.scope = scope
                            if key_gone.gone:
                                scope.cancel()
                            while not expired:
                                msg = await _read(ws, cfg.stale_after_s)
                                await hand_on([msg], perf())
                        key_gone.scope = None
                        if not (expired or key_gone.gone):  # the rotation is due
                            new = await _Handover(
                                ws,
                                partial(connect_websocket_url, nursery, url),
                                read,
                                _close_ws,
                                hand_on,
                                cfg,
                            ).run()
                            if new is None:  # the new one failed: keep this one, try later
                                counts["user_rotations_failed"] = (
                                    counts.get("user_rotations_failed", 0) + 1
                                )
                                rotate_after = cfg.handover_retry_s
                            else:
                                old, ws = ws, new
                                await _close_ws(old)
                                counts["user_rotations"] = counts.get("user_rotations", 0) + 1
                                rotate_after = cfg.rotate_after_s
                        if expired:
                            reason = "listenKeyExpired"
                            break
                        if key_gone.gone:
                            reason = "listen key gone (-1125)"
                            break
                finally:
                    await _close_ws(ws)
                nursery.cancel_scope.cancel()
        except* (*_RECONNECT_ERRORS, trio.TooSlowError, RestError) as group:
            reason = _reason(group)
        await on_state("user", False, reason)
        if reason not in ("listenKeyExpired", "listen key gone (-1125)"):
            await backoff.wait()


class _KeyGone:
    """Set by the keepalive when the listen key is gone (-1125): stops the current read."""

    def __init__(self) -> None:
        self.gone = False
        self.scope: trio.CancelScope | None = None

    def set(self) -> None:
        self.gone = True
        if self.scope is not None:
            self.scope.cancel()


async def _close_ws(ws: WebSocketConnection) -> None:
    """Close a trio-websocket connection, shielded but bounded: its close handshake needs
    its reader task, which a cancelled nursery has already stopped."""
    with trio.CancelScope(shield=True), trio.move_on_after(1.0):
        await ws.aclose()


async def _close_wsconn(ws: WsConn) -> None:
    with trio.CancelScope(shield=True):
        await ws.aclose()


async def _keepalive(rest: RestClient, every_s: float, key_gone: _KeyGone) -> None:
    while True:
        await trio.sleep(every_s)
        try:
            await rest.keepalive_listen_key()
        except RestError as e:
            if e.code == -1125:
                key_gone.set()
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
