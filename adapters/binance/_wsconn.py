"""A minimal WebSocket client connection (RFC 6455 framing on a trio socket).

Theory of operation
-------------------
trio-websocket serialises writers with a lock whose ``acquire`` is a checkpoint, and
``send_all`` yields after writing, so a request written through it waits one or two scheduler
rounds behind whatever else is runnable; on the read side its reader task hands every message
through a memory channel (a scheduler round per message) after wsproto's pure-Python frame
parser. Here:

* **Writing**: on plain ``ws://`` a frame is built (masked, as a client must) and handed to
  the kernel with a non-blocking ``send`` the moment ``send_text`` runs; ``on_written`` is
  called right then. Only when the socket is full do later frames queue behind the remainder
  (in call order) and wait for it to drain. ``wss://`` goes through ``trio.SSLStream``.
* **Reading**: one ``recv`` of up to 256 KB, then every whole frame in it is cut out with a
  few slice operations: ``receive_messages`` returns them all at once (a market stream at
  tens of thousands of frames per second costs one scheduler round per socket read, not per
  frame). Text payloads stay ``bytes`` (the parsers decode JSON from bytes). Pings are
  answered, pongs swallowed, a close frame or EOF raises ``WsClosed``; fragmented messages
  are reassembled.
* The opening handshake is a plain HTTP/1.1 upgrade checked against
  ``Sec-WebSocket-Accept``; bytes that arrive with the 101 answer are kept as the first frames.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket as _stdsocket
import ssl
import struct
from collections.abc import Callable
from urllib.parse import urlsplit

import trio

__all__ = ["WsClosed", "WsConn", "encode_frame"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_RECV = 64 * 1024
_H16 = struct.Struct("!H")
_H64 = struct.Struct("!Q")
_OP_CONT, _OP_TEXT, _OP_BIN, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10


class WsClosed(Exception):
    """The connection is closed (by either side, or broken)."""


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    k = int.from_bytes((key * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(payload, "little") ^ k).to_bytes(n, "little")


def encode_frame(payload: bytes, opcode: int = _OP_TEXT, *, mask: bool = True) -> bytes:
    """One final frame; masked with a random key (a client's frames must be)."""
    n = len(payload)
    b0 = 0x80 | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 65536:
        head = bytes((b0, m | 126)) + _H16.pack(n)
    else:
        head = bytes((b0, m | 127)) + _H64.pack(n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class WsConn:
    def __init__(
        self, raw: _stdsocket.socket, sock: trio.socket.SocketType, stream: trio.SSLStream | None
    ) -> None:
        self._raw = raw
        self._sock = sock
        self._stream = stream
        self._out = bytearray()
        self._drain = trio.Lock()
        self._in = bytearray()
        self._frag: list[bytes] = []
        self._ready: list[bytes] = []
        self.closed = ""

    @classmethod
    async def connect(cls, url: str, *, extra_headers: dict[str, str] | None = None) -> WsConn:
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
            conn = cls(raw, sock, stream)
            host = u.hostname if u.port is None else f"{u.hostname}:{u.port}"
            target = u.path or "/"
            if u.query:
                target += "?" + u.query
            key = base64.b64encode(os.urandom(16))
            lines = [
                f"GET {target} HTTP/1.1",
                f"Host: {host}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key.decode()}",
                "Sec-WebSocket-Version: 13",
                *(f"{k}: {v}" for k, v in (extra_headers or {}).items()),
            ]
            await conn._write(("\r\n".join(lines) + "\r\n\r\n").encode(), None)
            buf = bytearray()
            while b"\r\n\r\n" not in buf:
                buf += await conn._recv()
                if len(buf) > 65536:
                    raise WsClosed("handshake answer too long")
            head, _, rest = bytes(buf).partition(b"\r\n\r\n")
            status_line, *header_lines = head.split(b"\r\n")
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or parts[1] != b"101":
                code = parts[1].decode(errors="replace") if len(parts) > 1 else "?"
                raise WsClosed(f"handshake refused ({code})")
            headers = {}
            for h in header_lines:
                k, _, v = h.partition(b":")
                headers[k.strip().lower()] = v.strip()
            want = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            if headers.get(b"sec-websocket-accept") != want:
                raise WsClosed("handshake refused (bad Sec-WebSocket-Accept)")
            conn._in += rest
            return conn
        except BaseException:
            sock.close()
            raise

    async def _recv(self) -> bytes:
        try:
            if self._stream is not None:
                data = await self._stream.receive_some(_RECV)
            else:
                data = await self._sock.recv(_RECV)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
            self.closed = self.closed or f"{type(e).__name__}: {e}"
            raise WsClosed(self.closed) from None
        if not data:
            self.closed = self.closed or "EOF"
            raise WsClosed(self.closed)
        return data

    async def _write(self, data: bytes, on_written: Callable[[], None] | None) -> None:
        if self._stream is None and self.write_now(data, on_written):
            return
        await self.flush(data if self._stream is not None else b"")
        if on_written is not None:
            on_written()

    def write_now(self, data: bytes, on_written: Callable[[], None] | None) -> bool:
        """Write ``data`` without a checkpoint (plain sockets only): True if every byte went
        out now (``on_written`` was called); else the rest is queued and ``flush()`` must be
        awaited before the frame counts as written."""
        try:
            if not self._out:
                try:
                    n = self._raw.send(data)
                except BlockingIOError:
                    n = 0
                if n == len(data):
                    if on_written is not None:
                        on_written()
                    return True
                data = data[n:]
            self._out += data
            return False
        except OSError as e:
            self.closed = self.closed or f"{type(e).__name__}: {e}"
            raise WsClosed(self.closed) from None

    async def flush(self, data: bytes = b"") -> None:
        """Send ``data`` (TLS streams) or what ``write_now`` queued (plain sockets)."""
        try:
            if self._stream is not None:
                async with self._drain:
                    await self._stream.send_all(data)
                return
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

    @property
    def writes_now(self) -> bool:
        """Whether ``write_now`` can be used (a plain socket, not TLS)."""
        return self._stream is None

    def send_text_now(self, text: str | bytes, on_written: Callable[[], None] | None) -> bool:
        """``send_text`` without a checkpoint: see ``write_now``."""
        if self.closed:
            raise WsClosed(self.closed)
        data = text.encode() if isinstance(text, str) else text
        return self.write_now(encode_frame(data), on_written)

    async def send_text(
        self, text: str | bytes, on_written: Callable[[], None] | None = None
    ) -> None:
        if self.closed:
            raise WsClosed(self.closed)
        data = text.encode() if isinstance(text, str) else text
        await self._write(encode_frame(data), on_written)

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping (its pong is swallowed by the reader: any bytes prove the line alive)."""
        await self._write(encode_frame(payload, _OP_PING), None)

    def _frames(self) -> list[tuple[int, bool, bytes]]:
        """Cut every whole frame out of the input buffer: (opcode, fin, payload)."""
        buf = self._in
        size = len(buf)
        off = 0
        out: list[tuple[int, bool, bytes]] = []
        while size - off >= 2:
            b0 = buf[off]
            b1 = buf[off + 1]
            n = b1 & 0x7F
            p = off + 2
            if n == 126:
                if size - p < 2:
                    break
                n = _H16.unpack_from(buf, p)[0]
                p += 2
            elif n == 127:
                if size - p < 8:
                    break
                n = _H64.unpack_from(buf, p)[0]
                p += 8
            if b1 & 0x80:  # a masked frame from a server: allowed to read, never expected
                if size - p < 4:
                    break
                key = bytes(buf[p : p + 4])
                p += 4
                if size - p < n:
                    break
                payload = _mask(bytes(buf[p : p + n]), key)
            else:
                if size - p < n:
                    break
                payload = bytes(buf[p : p + n])
            out.append((b0 & 0x0F, bool(b0 & 0x80), payload))
            off = p + n
        if off:
            del buf[:off]
        return out

    async def receive_messages(self) -> list[bytes]:
        """Every whole message that has arrived, after at most one socket read (one reader
        task only). May be empty (only control frames arrived)."""
        if self._ready:
            out, self._ready = self._ready, []
            return out
        if self.closed:
            raise WsClosed(self.closed)
        frames = self._frames() if self._in else []
        if not frames:
            self._in += await self._recv()
            frames = self._frames()
        out: list[bytes] = []
        for op, fin, payload in frames:
            if op == _OP_TEXT or op == _OP_BIN:
                if fin:
                    out.append(payload)
                else:
                    self._frag = [payload]
            elif op == _OP_CONT:
                self._frag.append(payload)
                if fin:
                    out.append(b"".join(self._frag))
                    self._frag = []
            elif op == _OP_PING:
                await self._write(encode_frame(payload, _OP_PONG), None)
            elif op == _OP_CLOSE:
                code = _H16.unpack_from(payload)[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode(errors="replace")
                self.closed = f"closed by the server ({code} {reason})".strip()
                try:
                    await self._write(encode_frame(payload[:2], _OP_CLOSE), None)
                except WsClosed:
                    pass
                if out:  # what came before the close first; the next call raises
                    return out
                raise WsClosed(self.closed)
        return out

    async def get_message(self) -> bytes:
        """The next whole message (one reader task only)."""
        while not self._ready:
            if self.closed:
                raise WsClosed(self.closed)
            self._ready = await self.receive_messages()
        return self._ready.pop(0)

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = "closed"
            try:
                with trio.move_on_after(1):
                    await self._write(encode_frame(_H16.pack(1000), _OP_CLOSE), None)
            except (WsClosed, Exception):
                pass
        self._sock.close()
