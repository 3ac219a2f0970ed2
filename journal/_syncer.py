"""Group commit's fdatasync, done by a small child process while the writer keeps appending.

Why a process and not a thread: fdatasync releases the GIL, but a thread needs the GIL back to
say that it finished, and a caller busy encoding records hands the GIL over only every switch
interval, and under CPython's forced switching it then waits for the thread to be scheduled:
on a loaded 2-core machine that stalled the writer and pushed append->durable to 20-35 ms
(measured). A child process has its own interpreter: the writer only writes a short request
line to a pipe and reads answers without blocking.

fdatasync works on the file, not on one descriptor, so the child syncing its own read-only
descriptor of the segment makes durable everything the writer wrote to it before asking.

With a minimum gap (``Syncer(min_gap_ns)``) the child starts a sync at most that often,
waiting in its own process for the gap to pass (requests that arrive meanwhile join the same
sync): the caller asks whenever it has written something, and the wait does not depend on
how busy its own loop is.

Protocol, one line each way: the writer sends ``<seq> <segment path>\\n`` after writing the
records up to ``seq``; the child reads every line waiting, syncs the segment of the last one
and answers ``<seq> <CLOCK_MONOTONIC ns when the sync returned> <ns the sync took>\\n``, or
``E <message>\\n`` if the sync failed (then it exits). The first sync of a segment also syncs
its directory, so the new file's name is durable even for a writer that never syncs on its own
(the live runtime; the finished segment itself is synced by the writer's rotation). It exits
when the request pipe closes, so a writer killed with -9 leaves nothing behind.
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["SyncError", "Syncer"]

_CHILD = r"""
import os, select, sys, time
gap = int(sys.argv[1]) if len(sys.argv) > 1 else 0
fd, path, pending, last = -1, b"", b"", 0
while True:
    data = os.read(0, 65536)
    if not data:
        break
    pending += data
    # at most one sync per ``gap`` ns: requests arriving meanwhile join the next one
    deadline = last + gap
    while (now := time.monotonic_ns()) < deadline:
        if select.select([0], [], [], (deadline - now) / 1e9)[0]:
            more = os.read(0, 65536)
            if not more:
                break
            pending += more
    lines = pending.split(b"\n")
    pending = lines.pop()
    if not lines:
        continue
    seq, _, want = lines[-1].partition(b" ")
    try:
        last = start = time.monotonic_ns()
        if want != path:
            if fd >= 0:
                os.close(fd)
            fd, path = os.open(want, os.O_RDONLY), want
            dfd = os.open(os.path.dirname(want) or b".", os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        os.fdatasync(fd)
    except OSError as e:
        os.write(1, b"E " + str(e).encode(errors="replace").replace(b"\n", b" ") + b"\n")
        break
    done = time.monotonic_ns()
    os.write(1, seq + b" %d %d\n" % (done, done - start))
"""


class SyncError(OSError):
    """The child's fdatasync failed (the message is the OS error)."""


class Syncer:
    """Parent side: ``request`` a sync, ``poll`` the answers, ``close`` at the end.

    ``answer_fd`` is readable when an answer waits (for an event loop to wait on).
    """

    def __init__(self, min_gap_ns: int = 0) -> None:
        """``min_gap_ns``: the child starts a sync at most that often (requests that arrive
        sooner wait, in the child, and are served together), so a caller may ask freely."""
        # -I -S: no site, no user paths: the child starts in ~10 ms and imports nothing of ours
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD, str(int(min_gap_ns))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None
        assert stdout is not None
        self._req = stdin.fileno()
        self._ack = stdout.fileno()
        os.set_blocking(self._ack, False)
        self._partial = b""

    @property
    def answer_fd(self) -> int:
        return self._ack

    def request(self, seq: int, segment: bytes) -> None:
        try:
            os.write(self._req, b"%d %s\n" % (seq, segment))
        except BrokenPipeError:
            self._raise_failure()  # the child ended: say why if it did
            raise SyncError(5, "journal sync process ended unexpectedly") from None

    def poll(self) -> list[tuple[int, int, int]]:
        """The (seq, durable at ns, ns the sync took) answers that arrived, oldest first;
        never blocks."""
        try:
            data = os.read(self._ack, 65536)
        except BlockingIOError:
            return []
        if not data:  # the child is gone without a word (killed)
            raise SyncError(5, "journal sync process ended unexpectedly")
        return self._parse(data)

    def _parse(self, data: bytes) -> list[tuple[int, int, int]]:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            if line.startswith(b"E "):
                raise SyncError(5, line[2:].decode(errors="replace"))
            seq, at, took = line.split(b" ")
            out.append((int(seq), int(at), int(took)))
        return out

    def _raise_failure(self) -> None:
        os.set_blocking(self._ack, True)
        try:
            self._parse(os.read(self._ack, 65536))
        except OSError as e:
            if isinstance(e, SyncError):
                raise

    def close(self) -> None:
        """Stop the child (it finishes a sync in flight first)."""
        proc = self._proc
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
