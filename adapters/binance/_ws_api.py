"""The Binance USDⓈ-M WebSocket API for order entry (``order.place``, ``order.modify``,
``order.cancel``, ``order.status``) over one persistent trio-websocket connection.

Requests are JSON text frames ``{"id", "method", "params"}``; answers carry the same ``id``
and either ``result`` (an order object, like REST) or ``error`` (``{code, msg}``). Signed
params are signed over every param but ``signature``, sorted by name (ref/binance.md §2.4).

A disconnect with requests in flight is the same "unknown outcome" as a REST timeout: each
waiting ``order.place``/``order.modify`` raises ``OutcomeUnknown`` (resolved by the caller by
querying the client order id); the connection is reopened with back-off.

The connection is ``_wsconn.WsConn`` (its own framing on a raw socket): a request frame is written to
the kernel as soon as ``call`` runs, without the scheduler rounds trio-websocket's send lock
costs.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import msgspec
import trio

from ._rest import OutcomeUnknown, RestClient, RestError
from ._sign import Credentials, ws_api_payload
from ._user import OrderInfo
from ._wsconn import WsClosed, WsConn

__all__ = ["Started", "WsApiClient"]


class _Error(msgspec.Struct):
    code: int
    msg: str = ""


class _Answer(msgspec.Struct):
    id: int | str | None = None
    status: int = 0
    result: msgspec.Raw = msgspec.Raw(b"")
    error: _Error | None = None


class _Call:
    __slots__ = ("answer", "done", "lost")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.answer: _Answer | None = None
        self.lost = ""


class WsApiClient:
    def __init__(
        self,
        url: str,
        credentials: Credentials,
        rest: RestClient,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self._creds = credentials
        self.rest = rest  # its clock offset and recvWindow are shared
        self.timeout_s = timeout_s
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._ws: WsConn | None = None
        self._ready = trio.Event()
        self._decode = msgspec.json.Decoder(_Answer).decode
        self._order = msgspec.json.Decoder(OrderInfo, strict=False).decode
        self.latency_sink: list[int] | None = None
        self.stats = {"requests": 0, "reconnects": 0, "lost_in_flight": 0}

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        delay = 0.5
        started = False
        while True:
            ws: WsConn | None = None
            try:
                ws = await WsConn.connect(self.url)
                self._ws = ws
                self._ready.set()
                delay = 0.5
                if not started:
                    started = True
                    task_status.started()
                decode, calls = self._decode, self._calls
                while True:
                    for msg in await ws.receive_messages():
                        ans = decode(msg)
                        if isinstance(ans.id, int):
                            call = calls.pop(ans.id, None)
                            if call is not None:
                                call.answer = ans
                                call.done.set()
            except (WsClosed, OSError, trio.BrokenResourceError):
                pass
            finally:
                if ws is not None:
                    with trio.CancelScope(shield=True):
                        await ws.aclose()
            self._ws = None
            self._ready = trio.Event()
            for call in self._calls.values():
                call.lost = "ws-api disconnected"
                call.done.set()
            self.stats["lost_in_flight"] += len(self._calls)
            self._calls.clear()
            self.stats["reconnects"] += 1
            await trio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def call(
        self, method: str, params: dict[str, Any], *, mutating: bool, t0_ns: int = 0
    ) -> bytes:
        """One signed request; the ``result`` JSON, or raise ``RestError``/``OutcomeUnknown``."""
        if self._ws is None:  # connected: no await (a checkpoint) before the write
            with trio.move_on_after(self.timeout_s):
                await self._ready.wait()
        started = self.start(method, params, mutating=mutating, t0_ns=t0_ns)
        if started is None:
            raise RestError(0, -1001, "ws-api not connected", method)  # nothing was sent
        return await self.finish(started)

    def start(
        self, method: str, params: dict[str, Any], *, mutating: bool, t0_ns: int = 0
    ) -> Started | None:
        """Sign and write the request now, without a checkpoint: the caller's own step puts
        the bytes on the socket (the runtime's consumer does, so no scheduler round sits
        between a decision and its request). None if not connected; ``finish`` awaits the
        answer (and raises what went wrong, a failed write included)."""
        ws = self._ws
        if ws is None:
            return None
        params = {
            **params,
            "apiKey": self._creds.api_key,
            "recvWindow": self.rest.recv_window_ms,
            "timestamp": self.rest.timestamp_ms(),
        }
        params["signature"] = self._creds.sign(ws_api_payload(params).encode())
        rid = next(self._ids)
        call = self._calls[rid] = _Call()
        frame = msgspec.json.encode({"id": rid, "method": method, "params": params})
        self.stats["requests"] += 1
        sink = self.latency_sink
        on_written = _written_hook(t0_ns, sink) if t0_ns and sink is not None else None
        started = Started(method, mutating, rid, call, ws, on_written)
        if ws.writes_now:
            try:
                started.written = ws.send_text_now(frame, on_written)
            except WsClosed:
                started.failed = True
        else:
            started.frame = frame
        return started

    async def finish(self, started: Started) -> bytes:
        """The answer to a started request: its ``result`` JSON, or raise."""
        method, mutating, call = started.method, started.mutating, started.call
        try:
            if started.failed:
                raise WsClosed("write failed")
            if started.frame:
                await started.ws.send_text(started.frame, started.on_written)
            elif not started.written:
                await started.ws.flush()
                if started.on_written is not None:
                    started.on_written()
        except WsClosed:
            self._calls.pop(started.rid, None)
            if mutating:
                raise OutcomeUnknown(method, "ws-api send failed") from None
            raise RestError(0, -1001, "ws-api send failed", method) from None
        with trio.move_on_after(self.timeout_s):
            await call.done.wait()
        ans = call.answer
        if ans is None:
            self._calls.pop(started.rid, None)
            if mutating:
                raise OutcomeUnknown(method, call.lost or "ws-api timeout")
            raise RestError(0, -1007, call.lost or "ws-api timeout", method)
        if ans.error is not None:
            if ans.status >= 500 and mutating:
                raise OutcomeUnknown(method, f"status {ans.status} {ans.error.code}")
            raise RestError(ans.status, ans.error.code, ans.error.msg, method)
        return bytes(ans.result) if ans.result else b"{}"

    def order_info(self, body: bytes) -> OrderInfo:
        return self._order(body)

    def start_place(self, params: list[tuple[str, object]], t0_ns: int = 0) -> Started | None:
        return self.start("order.place", dict(params), mutating=True, t0_ns=t0_ns)

    def start_cancel(self, symbol: str, client_id: str, t0_ns: int = 0) -> Started | None:
        return self.start(
            "order.cancel", _cancel_params(symbol, client_id), mutating=False, t0_ns=t0_ns
        )

    async def place(self, params: list[tuple[str, object]], t0_ns: int = 0) -> OrderInfo:
        body = await self.call("order.place", dict(params), mutating=True, t0_ns=t0_ns)
        return self._order(body)

    async def amend(self, params: list[tuple[str, object]], t0_ns: int = 0) -> OrderInfo:
        body = await self.call("order.modify", dict(params), mutating=True, t0_ns=t0_ns)
        return self._order(body)

    async def cancel(self, symbol: str, client_id: str, t0_ns: int = 0) -> OrderInfo:
        body = await self.call(
            "order.cancel", _cancel_params(symbol, client_id), mutating=False, t0_ns=t0_ns
        )
        return self._order(body)


def _cancel_params(symbol: str, client_id: str) -> dict[str, Any]:
    return {"symbol": symbol, "origClientOrderId": client_id}


class Started:
    """A request ``WsApiClient.start`` has written (or tried to): what ``finish`` needs."""

    __slots__ = (
        "call",
        "failed",
        "frame",
        "method",
        "mutating",
        "on_written",
        "rid",
        "written",
        "ws",
    )

    def __init__(
        self,
        method: str,
        mutating: bool,
        rid: int,
        call: _Call,
        ws: WsConn,
        on_written: Callable[[], None] | None,
    ) -> None:
        self.method = method
        self.mutating = mutating
        self.rid = rid
        self.call = call
        self.ws = ws
        self.on_written = on_written
        self.written = False  # every byte is on the socket
        self.failed = False  # the write failed: the outcome is unknown (if it mutates)
        self.frame = b""  # not written yet (a TLS stream): finish sends it


def _written_hook(t0_ns: int, sink: list[int]) -> Callable[[], None]:
    perf = time.perf_counter_ns

    def written() -> None:
        sink.append(perf() - t0_ns)

    return written
