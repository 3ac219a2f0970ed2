"""A small HTTP/1.1 server on trio (h11), with WebSocket upgrades handed to trio-websocket.

One listening port serves REST, market streams, the user stream and the WebSocket API, as
one base URL: a connection whose first request asks for ``Upgrade: websocket`` is given,
bytes and all, to ``trio_websocket.wrap_server_stream``; any other is served request by
request with keep-alive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import h11
import trio

__all__ = ["HttpRequest", "PrefixedStream", "serve_connection"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024


class HttpRequest:
    __slots__ = ("body", "headers", "method", "path", "query")

    def __init__(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body


class HttpAnswer:
    __slots__ = ("body", "hang", "headers", "status")

    def __init__(
        self, status: int, body: bytes, headers: list[tuple[str, str]], hang: bool = False
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.hang = hang


class PrefixedStream(trio.abc.Stream):
    """A stream that first gives back bytes already read from ``inner``."""

    def __init__(self, inner: trio.abc.Stream, prefix: bytes) -> None:
        self.inner = inner
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            await trio.lowlevel.checkpoint()
            return data
        return await self.inner.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def socket(self) -> object:  # trio-websocket looks for it to name the endpoints
        return getattr(self.inner, "socket", None)


def _is_upgrade(head: bytes) -> bool:
    lower = head.lower()
    return b"upgrade: websocket" in lower or b"upgrade:websocket" in lower


async def serve_connection(
    stream: trio.SocketStream,
    on_http: Callable[[HttpRequest], Awaitable[HttpAnswer]],
    on_websocket: Callable[[PrefixedStream], Awaitable[None]],
) -> None:
    """Serve one TCP connection until the peer closes it."""
    head = b""
    try:
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(65536)
            if not data or len(head) > _MAX_HEAD:
                await stream.aclose()
                return
            head += data
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    if _is_upgrade(head.split(b"\r\n\r\n", 1)[0]):
        await on_websocket(PrefixedStream(stream, head))
        return
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
    conn.receive_data(head)
    try:
        await _serve_http(conn, stream, on_http)
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
        pass
    finally:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await stream.aclose()


async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> object:
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)  # b"" means the peer closed
            continue
        return ev


async def _serve_http(
    conn: h11.Connection,
    stream: trio.SocketStream,
    on_http: Callable[[HttpRequest], Awaitable[HttpAnswer]],
) -> None:
    while True:
        ev = await _next_event(conn, stream)
        if isinstance(ev, h11.ConnectionClosed) or ev is h11.PAUSED:
            return
        if not isinstance(ev, h11.Request):
            return
        body = bytearray()
        while True:
            part = await _next_event(conn, stream)
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > _MAX_BODY:
                    return
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return
        target = ev.target.decode("latin-1")
        path, _, query = target.partition("?")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in ev.headers}
        answer = await on_http(
            HttpRequest(ev.method.decode(), path, query.encode("latin-1"), headers, bytes(body))
        )
        if answer.hang:  # the "timeout" fault: say nothing until the client gives up
            while await stream.receive_some(65536):
                pass
            return
        hdrs = [
            ("Content-Type", "application/json;charset=UTF-8"),
            ("Content-Length", str(len(answer.body))),
            *answer.headers,
        ]
        await stream.send_all(
            conn.send(h11.Response(status_code=answer.status, headers=hdrs))  # type: ignore[arg-type]
            + conn.send(h11.Data(data=answer.body))  # type: ignore[operator]
            + conn.send(h11.EndOfMessage())  # type: ignore[operator]
        )
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return
