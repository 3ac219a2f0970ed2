"""A minimal WebSocket client connection (wsproto over a trio socket) for order entry.

Theory of operation
-------------------
trio-websocket serialises writers with a lock whose ``acquire`` is a checkpoint, and
``send_all`` yields after writing, so a request written through it waits one or two scheduler
rounds behind whatever else is runnable. Here, on plain ``ws://``, a frame is handed to the
kernel with a non-blocking ``send`` the moment ``send_text`` runs and ``on_written`` is called
right then; only when the socket is full do later frames queue behind the remainder (in call
order) and wait for it to drain. ``wss://`` goes through ``trio.SSLStream``.

Reading is one task calling ``get_message`` in a loop; pings are answered, a close frame or
EOF raises ``WsClosed``.
"""

from __future__ import annotations

import socket as _stdsocket
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

__all__ = ["WsClosed", "WsConn"]


class WsClosed(Exception):
    """The connection is closed (by either side, or broken)."""


class WsConn:
    def __init__(
        self,
        raw: _stdsocket.socket,
        sock: trio.socket.SocketType,
        stream: trio.SSLStream | None,
        ws: WSConnection,
    ) -> None:
        self._raw = raw
        self._sock = sock
        self._stream = stream
        self._ws = ws
        self._out = bytearray()
        self._drain = trio.Lock()
        self._parts: list[str] = []
        self._bparts: list[bytes] = []
        self._ready: list[str | bytes] = []
        self.closed = ""

    @classmethod
    async def connect(cls, url: str) -> WsConn:
        u = urlsplit(url)
        if u.scheme not in ("ws", "wss") or not u.hostname:
            raise ValueError(f"not a ws(s):// URL: {url!r}")
        tls = u.scheme == "wss"
        port = u.port or (443 if tls else 80)
        infos = await trio.socket.getaddrinfo(u.hostname, port, type=_stdsocket.SOCK_STREAM)
        family, type_, proto, _, addr = infos[0]
        raw = _stdsocket.socket(family, type_, proto)
        raw.setblocking(False)
        raw.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            await sock.connect(addr)
            stream = None
            if tls:
                stream = trio.SSLStream(
                    trio.SocketStream(sock),
                    ssl.create_default_context(),
                    server_hostname=u.hostname,
                    https_compatible=True,
                )
                await stream.do_handshake()
            ws = WSConnection(ConnectionType.CLIENT)
            host = u.hostname if u.port is None else f"{u.hostname}:{u.port}"
            target = u.path or "/"
            if u.query:
                target += "?" + u.query
            conn = cls(raw, sock, stream, ws)
            await conn._write(ws.send(Request(host=host, target=target)), None)
            while True:
                ws.receive_data(await conn._recv())
                for ev in ws.events():
                    if isinstance(ev, AcceptConnection):
                        return conn
                    if isinstance(ev, RejectConnection):
                        raise WsClosed(f"handshake refused ({ev.status_code})")
        except BaseException:
            sock.close()
            raise

    async def _recv(self) -> bytes:
        try:
            if self._stream is not None:
                data = await self._stream.receive_some(65536)
            else:
                data = await self._sock.recv(65536)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
            self.closed = self.closed or f"{type(e).__name__}: {e}"
            raise WsClosed(self.closed) from None
        if not data:
            self.closed = self.closed or "EOF"
            raise WsClosed(self.closed)
        return data

    async def _write(self, data: bytes, on_written: Callable[[], None] | None) -> None:
        try:
            if self._stream is not None:
                async with self._drain:
                    await self._stream.send_all(data)
            else:
                if not self._out:
                    try:
                        n = self._raw.send(data)
                    except BlockingIOError:
                        n = 0
                    if n == len(data):
                        if on_written is not None:
                            on_written()
                        return
                    data = data[n:]
                self._out += data
                async with self._drain:  # whoever holds it drains everything queued so far
                    while self._out:
                        await trio.lowlevel.wait_writable(self._raw)
                        try:
                            n = self._raw.send(self._out)
                        except BlockingIOError:
                            continue
                        del self._out[:n]
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
            self.closed = self.closed or f"{type(e).__name__}: {e}"
            raise WsClosed(self.closed) from None
        if on_written is not None:
            on_written()

    async def send_text(self, text: str, on_written: Callable[[], None] | None = None) -> None:
        if self.closed:
            raise WsClosed(self.closed)
        await self._write(self._ws.send(TextMessage(data=text)), on_written)

    async def get_message(self) -> str | bytes:
        """The next whole message (one reader task only)."""
        ws = self._ws
        while not self._ready:
            ws.receive_data(await self._recv())
            for ev in ws.events():
                if isinstance(ev, TextMessage):
                    self._parts.append(ev.data)
                    if ev.message_finished:
                        self._ready.append("".join(self._parts))
                        self._parts.clear()
                elif isinstance(ev, BytesMessage):
                    self._bparts.append(bytes(ev.data))
                    if ev.message_finished:
                        self._ready.append(b"".join(self._bparts))
                        self._bparts.clear()
                elif isinstance(ev, Ping):
                    await self._write(ws.send(ev.response()), None)
                elif isinstance(ev, CloseConnection):
                    self.closed = f"closed by the server ({ev.code} {ev.reason or ''})".strip()
                    try:
                        await self._write(ws.send(ev.response()), None)
                    except WsClosed:
                        pass
                    raise WsClosed(self.closed)
        return self._ready.pop(0)

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = "closed"
            try:
                with trio.move_on_after(1):
                    await self._write(self._ws.send(CloseConnection(code=1000)), None)
            except (WsClosed, Exception):
                pass
        self._sock.close()
