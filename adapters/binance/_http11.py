"""A minimal HTTP/1.1 keep-alive client on trio sockets, for the order endpoints' hot path.

Theory of operation
-------------------
httpx costs about half a millisecond per request in CPython (its request/response models,
httpcore's pool and state machine, an ``await`` at every layer). An order request needs none
of that: its bytes are built once (``render``) and written to an idle keep-alive connection.

* **The write is synchronous when it can be.** On plain ``http://`` the bytes go to the kernel
  with a non-blocking ``socket.send`` the moment ``request`` runs, before the first
  ``await`` — so the time a request's bytes were handed to the socket is known exactly
  (``on_written`` is called right then) and no scheduler round sits between the decision and
  the wire. Only a partial write waits for the socket to become writable. ``https://`` goes
  through ``trio.SSLStream`` (TLS cannot be written synchronously).
* **A pool of idle connections**, newest first. Before reuse, a connection the server has
  closed (EOF or unexpected bytes waiting) is thrown away, so a request is never written into
  a dead connection without knowing it (a peek, one syscall).
* **Errors say whether anything was sent.** ``ConnectFailed``: the connection could not be
  opened, nothing left this process — any request may be retried. ``SendFailed``: the
  connection broke while the request was being written or its answer read, or no answer came
  in time (``trio.TooSlowError`` from the caller's deadline): it may have reached the server.
* Answers: ``Content-Length`` or ``chunked`` bodies; ``Connection: close`` retires the
  connection after the answer.
"""

from __future__ import annotations

import errno
import socket as _stdsocket
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

import trio

__all__ = ["ConnectFailed", "Http11Pool", "HttpAnswer", "SendFailed"]

_MAX_HEAD = 64 * 1024


class ConnectFailed(Exception):
    """The connection could not be opened: the request was not sent."""


class SendFailed(Exception):
    """The connection failed after (part of) the request may have been sent."""


class HttpAnswer:
    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.reason = reason
        #: lower-case names
        self.headers = headers
        self.body = body


class _Conn:
    __slots__ = ("buf", "raw", "sock", "stream")

    def __init__(
        self, raw: _stdsocket.socket, sock: trio.socket.SocketType, stream: trio.SSLStream | None
    ) -> None:
        self.raw = raw  # the stdlib socket (non-blocking), for synchronous writes
        self.sock = sock
        self.stream = stream  # TLS, or None for plain TCP
        self.buf = bytearray()

    def alive(self) -> bool:
        """False if the server closed it or sent something unasked while it was idle."""
        if self.buf:
            return False
        try:
            self.raw.recv(1, _stdsocket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False  # b"" (EOF) or stray bytes: either way not reusable

    async def write(self, data: bytes, on_written: Callable[[], None] | None) -> None:
        if self.stream is not None:
            await self.stream.send_all(data)
            if on_written is not None:
                on_written()
            return
        view = memoryview(data)
        raw = self.raw
        sent = 0
        while True:
            try:
                sent += raw.send(view[sent:])
            except BlockingIOError:
                pass
            if sent >= len(data):
                break
            await trio.lowlevel.wait_writable(raw)
        if on_written is not None:
            on_written()

    async def _more(self) -> None:
        if self.stream is not None:
            data = await self.stream.receive_some(65536)
        else:
            data = await self.sock.recv(65536)
        if not data:
            raise SendFailed("server closed the connection")
        self.buf += data

    async def read_answer(self) -> tuple[HttpAnswer, bool]:
        """One answer; and whether the connection may be kept."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > _MAX_HEAD:
                raise SendFailed("answer head too large")
            await self._more()
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise SendFailed("not an HTTP/1.1 answer")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        keep = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            n = int(headers.get("content-length", "-1"))
            if n < 0:  # read to EOF
                while True:
                    try:
                        await self._more()
                    except SendFailed:
                        break
                body, keep = bytes(self.buf), False
                self.buf.clear()
            else:
                while len(self.buf) < n:
                    await self._more()
                body = bytes(self.buf[:n])
                del self.buf[:n]
        return HttpAnswer(status, reason, headers, body), keep

    async def _chunked(self) -> bytes:
        out = bytearray()
        while True:
            while (i := self.buf.find(b"\r\n")) < 0:
                await self._more()
            size = int(bytes(self.buf[:i]).split(b";")[0], 16)
            del self.buf[: i + 2]
            while len(self.buf) < size + 2:
                await self._more()
            out += self.buf[:size]
            del self.buf[: size + 2]
            if size == 0:
                return bytes(out)  # (trailers are not used by Binance)

    def close(self) -> None:
        try:
            self.sock.close()  # (trio's close wakes anything waiting on it)
        except OSError:
            pass


class Http11Pool:
    """Keep-alive HTTP/1.1 connections to one origin (``http://`` or ``https://``)."""

    def __init__(self, base_url: str, *, max_idle: int = 16) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port or (443 if self.tls else 80)
        host_header = self.host if u.port is None else f"{self.host}:{u.port}"
        self._host_line = f"Host: {host_header}\r\n".encode()
        self.max_idle = max_idle
        self._idle: list[_Conn] = []
        self._ssl = ssl.create_default_context() if self.tls else None
        self.stats = {"connects": 0, "reused": 0, "stale": 0}

    def render(
        self, method: str, target: str, headers: bytes = b"", body: bytes | None = None
    ) -> bytes:
        """The request's bytes. ``headers``: pre-rendered ``Name: value\\r\\n`` lines."""
        head = f"{method} {target} HTTP/1.1\r\n".encode() + self._host_line + headers
        if body is None:
            if method in ("POST", "PUT"):
                head += b"Content-Length: 0\r\n"
            return head + b"\r\n"
        return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body

    async def _connect(self) -> _Conn:
        self.stats["connects"] += 1
        try:
            infos = await trio.socket.getaddrinfo(self.host, self.port, type=_stdsocket.SOCK_STREAM)
            family, type_, proto, _, addr = infos[0]
            raw = _stdsocket.socket(family, type_, proto)
        except OSError as e:
            raise ConnectFailed(f"cannot resolve {self.host}: {e.strerror or e}") from None
        raw.setblocking(False)
        try:
            raw.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        except OSError:
            pass
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            await sock.connect(addr)
        except OSError as e:
            raw.close()
            raise ConnectFailed(f"cannot connect: {errno.errorcode.get(e.errno or 0, e)}") from None
        except BaseException:
            raw.close()
            raise
        stream = None
        if self._ssl is not None:
            stream = trio.SSLStream(
                trio.SocketStream(sock), self._ssl, server_hostname=self.host, https_compatible=True
            )
            try:
                await stream.do_handshake()
            except (trio.BrokenResourceError, OSError) as e:
                raw.close()
                raise ConnectFailed(f"TLS handshake failed: {e}") from None
        return _Conn(raw, sock, stream)

    def _take_idle(self) -> _Conn | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.alive():
                self.stats["reused"] += 1
                return conn
            self.stats["stale"] += 1
            conn.close()
        return None

    async def request(
        self, data: bytes, on_written: Callable[[], None] | None = None
    ) -> HttpAnswer:
        """Send one rendered request and read its answer (see the module docstring).

        The caller bounds it with its own deadline; a cancellation after the first byte may
        have been written closes the connection (its state is unknown).
        """
        conn = self._take_idle()
        if conn is None:
            conn = await self._connect()
        ok = False
        try:
            try:
                await conn.write(data, on_written)
                answer, keep = await conn.read_answer()
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
                raise SendFailed(f"{type(e).__name__}: {e}") from None
            except ValueError as e:  # a malformed status line or length
                raise SendFailed(f"bad answer: {e}") from None
            ok = keep
            return answer
        finally:
            if ok and len(self._idle) < self.max_idle:
                self._idle.append(conn)
            else:
                conn.close()

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
