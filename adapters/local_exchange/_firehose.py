"""A market-data firehose on loopback: a recorded Binance session replayed at a chosen rate.

The local exchange's own market streams are paced by its matching (a Python process doing
the exchange's work per event): they cannot go much past a few thousand events/s. To show
what the live runtime sustains, this server sends the frames of a recorded combined stream
(hftbacktest's ``<local ns> <json>`` lines: depth diffs, bookTicker, trades) as fast as asked,
over real WebSocket connections, and answers ``GET /fapi/v1/depth`` with a snapshot that
chains onto the diffs it sent, so the engine's depth sync works as against Binance.

Theory of operation
-------------------
* The file is read once; each line becomes a byte template. Update ids are rewritten into
  one continuous sequence (a depth diff ``k`` has ``pu = U = base + k - 1``, ``u = base + k``;
  a bookTicker carries the current ``u``), so looping over the file never repeats an id. At
  the end of the file the server's book is emptied and the ids jump (a gap): the client
  resyncs from a new snapshot, as after a real gap.
* The book behind the snapshot is built from the diffs sent since the last loop (an empty
  book at the start: the recording's own snapshot is older than its first whole diff chain);
  a subset of the true book, never crossed.
* Pacing: every millisecond the sender hands the kernel all frames due by then (``rate``
  per second) as one ``sendall``. If the client reads slower, the socket fills and the
  sender falls behind its schedule: ``backlog`` (frames due but not yet written) says by how
  much, and is the figure that tells whether the client keeps up.
* Only paths under ``/public`` (or a plain ``/stream``) get the firehose; others (the
  runtime's ``/market`` connection, a user stream) stay open and idle. Pings are answered.

Run as ``python -m adapters.local_exchange._firehose FILE RATE``: prints the port, then one
JSON line of figures per second on stderr.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import socket
import struct
import sys
import threading
import time
from pathlib import Path

__all__ = ["Firehose", "load_recording"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_DEPTH_IDS = re.compile(rb'"U":\d+,"u":\d+,"pu":\d+')
_TICKER_ID = re.compile(rb'"u":\d+')
_GAP = 1_000

#: kinds of templates
_RAW, _DEPTH, _TICKER = 0, 1, 2


def load_recording(
    path: str | Path, limit: int = 0
) -> list[tuple[int, bytes, list[tuple[str, str]], list[tuple[str, str]]]]:
    """(kind, template, bids, asks) per usable line, in file order (``limit`` lines at most)."""
    out: list[tuple[int, bytes, list[tuple[str, str]], list[tuple[str, str]]]] = []
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        for line in f:
            _, _, msg = line.rstrip(b"\n").partition(b" ")
            if not msg.startswith(b'{"stream":"'):
                continue  # the snapshot line: see the module docstring
            msg = msg.replace(b"%", b"%%")
            if b"@depth" in msg[:40]:
                data = json.loads(msg.replace(b"%%", b"%"))["data"]
                tmpl, n = _DEPTH_IDS.subn(b'"U":%d,"u":%d,"pu":%d', msg, count=1)
                if n:
                    bids = [(p, q) for p, q in data.get("b", [])]
                    asks = [(p, q) for p, q in data.get("a", [])]
                    out.append((_DEPTH, tmpl, bids, asks))
            elif b"@bookTicker" in msg[:40]:
                tmpl, n = _TICKER_ID.subn(b'"u":%d', msg, count=1)
                if n:
                    out.append((_TICKER, tmpl, [], []))
            else:
                out.append((_RAW, msg.replace(b"%%", b"%"), [], []))
            if limit and len(out) >= limit:
                break
    return out


def _ws_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + struct.pack("!H", n) + payload
    return b"\x81\x7f" + struct.pack("!Q", n) + payload


class Firehose:
    def __init__(
        self, path: str | Path, rate: float, *, host: str = "127.0.0.1", limit: int = 0
    ) -> None:
        self.lines = load_recording(path, limit)
        if not self.lines:
            raise ValueError(f"{path}: no combined-stream lines")
        self.rate = rate
        self._listen = socket.create_server((host, 0))
        self.port = self._listen.getsockname()[1]
        self._lock = threading.Lock()
        self._bids: dict[str, str] = {}
        self._asks: dict[str, str] = {}
        self.last_u = 1_000_000
        self.sent = 0
        self.backlog = 0
        self.max_backlog = 0
        self.loops = 0
        self.started = 0.0

    # -- serving -------------------------------------------------------------------------

    def serve_forever(self) -> None:
        while True:
            conn, _ = self._listen.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                target = lines[0].split(b" ")[1]
                headers = {}
                for h in lines[1:]:
                    k, _, v = h.partition(b":")
                    headers[k.strip().lower()] = v.strip()
                if headers.get(b"upgrade", b"").lower() == b"websocket":
                    self._websocket(conn, target, headers[b"sec-websocket-key"], buf)
                    return
                self._http(conn, target)
        except OSError:
            pass
        finally:
            conn.close()

    def _http(self, conn: socket.socket, target: bytes) -> None:
        if target.startswith(b"/fapi/v1/depth"):
            with self._lock:
                bids = sorted(
                    ((float(p), p, q) for p, q in self._bids.items() if float(q)), reverse=True
                )[:1000]
                asks = sorted((float(p), p, q) for p, q in self._asks.items() if float(q))[:1000]
                last = self.last_u
            now = int(time.time() * 1000)
            body = json.dumps(
                {
                    "lastUpdateId": last,
                    "E": now,
                    "T": now,
                    "bids": [[p, q] for _, p, q in bids],
                    "asks": [[p, q] for _, p, q in asks],
                }
            ).encode()
            status = b"200 OK"
        else:
            body, status = b'{"code":-1000,"msg":"firehose: market data only"}', b"404 Not Found"
        conn.sendall(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    def _websocket(self, conn: socket.socket, target: bytes, key: bytes, rest: bytes) -> None:
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        wlock = threading.Lock()
        stop = threading.Event()
        path = target.split(b"?")[0]
        if path.startswith(b"/public") or path == b"/stream":
            threading.Thread(target=self._send_loop, args=(conn, wlock, stop), daemon=True).start()
        try:
            self._read_loop(conn, wlock, rest)
        finally:
            stop.set()

    def _read_loop(self, conn: socket.socket, wlock: threading.Lock, buf: bytes) -> None:
        """Client frames (masked): answer pings, stop on close."""
        while True:
            while len(buf) >= 2:
                b0, b1 = buf[0], buf[1]
                n, off = b1 & 0x7F, 2
                if n == 126:
                    if len(buf) < 4:
                        break
                    n, off = struct.unpack("!H", buf[2:4])[0], 4
                elif n == 127:
                    if len(buf) < 10:
                        break
                    n, off = struct.unpack("!Q", buf[2:10])[0], 10
                masked = b1 & 0x80
                end = off + (4 if masked else 0) + n
                if len(buf) < end:
                    break
                payload = buf[end - n : end]
                if masked:
                    mask = buf[off : off + 4]
                    payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
                buf = buf[end:]
                op = b0 & 0x0F
                if op == 0x9:  # ping -> pong
                    with wlock:
                        conn.sendall(bytes((0x8A, len(payload))) + payload)
                elif op == 0x8:
                    with wlock:
                        conn.sendall(b"\x88\x02\x03\xe8")
                    return
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk

    # -- the firehose --------------------------------------------------------------------

    def _send_loop(self, conn: socket.socket, wlock: threading.Lock, stop: threading.Event) -> None:
        lines = self.lines
        n_lines = len(lines)
        i = 0
        rate = self.rate
        bids, asks = self._bids, self._asks
        t0 = time.perf_counter()
        self.started = t0
        written = 0
        out: list[bytes] = []
        frame = _ws_frame
        while not stop.is_set():
            due = int((time.perf_counter() - t0) * rate)
            todo = due - written
            self.backlog = todo
            if todo > self.max_backlog and written > rate:  # after the first second
                self.max_backlog = todo
            if todo <= 0:
                time.sleep(0.0005)
                continue
            todo = min(todo, max(1, int(rate / 100)))  # at most 10 ms worth per write
            with self._lock:
                for _ in range(todo):
                    kind, tmpl, b, a = lines[i]
                    if kind == _TICKER:
                        msg = tmpl % self.last_u
                    elif kind == _DEPTH:
                        u = self.last_u
                        msg = tmpl % (u, u + 1, u)
                        self.last_u = u + 1
                        bids.update(b)
                        asks.update(a)
                    else:
                        msg = tmpl
                    out.append(frame(msg))
                    i += 1
                    if i == n_lines:
                        i = 0
                        self.loops += 1
                        bids.clear()
                        asks.clear()
                        self.last_u += _GAP
            data = b"".join(out)
            out.clear()
            try:
                with wlock:
                    conn.sendall(data)
            except OSError:
                return  # the client went away
            written += todo
            self.sent += todo


def main() -> None:  # pragma: no cover - a bench helper, run in its own process
    path, rate = sys.argv[1], float(sys.argv[2])
    fh = Firehose(path, rate)
    print(fh.port, flush=True)

    def report() -> None:
        last = 0
        while True:
            time.sleep(1.0)
            sent = fh.sent
            print(
                json.dumps(
                    {
                        "sent": sent,
                        "rate": sent - last,
                        "backlog": fh.backlog,
                        "max_backlog": fh.max_backlog,
                        "loops": fh.loops,
                    }
                ),
                file=sys.stderr,
                flush=True,
            )
            last = sent

    threading.Thread(target=report, daemon=True).start()
    fh.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
