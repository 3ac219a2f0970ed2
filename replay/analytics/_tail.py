"""A backtest's export columns, built while it runs by a process that follows its journal.

Theory of operation
-------------------
An export's cost is decoding the journal into columns (``_collect.py``). A backtest writes
its journal anyway, so a second process can do that decoding *while the backtest runs*, on
another core, and leave the result next to the journal (``_sidecar.py``). Why not collect
the columns in the backtest's own loop: taking ~9 fields out of each event object costs
~0.5 us per event in CPython (``map(attrgetter)`` and ``array`` included), 15-20% of a
backtest's time per event; following the journal costs the backtest process nothing per
event.

The parent side (``ColumnBuilder``, imported by the backtest: stdlib only) starts
``python -c ... main JOURNAL`` with a pipe on its stdin. The child reads the journal's
segments as they grow (``os.pread`` from where it stopped), keeps the bytes of a frame that
is not complete yet for the next read, checks every frame's CRC, decodes in batches and
fills the same columns as an export (``_collect._State.batch``), replays the ledger as it
goes, and writes the big market tables (events, book tops, trades) to the columns file in
parts as they grow. A segment is finished once the next one exists (the writer rotates at a
record boundary). It keeps a CRC-32 of every byte it read, per segment.

When the backtest is done (its journal closed) it writes ``done``; the child reads to the
end, checks that the journal holds exactly the segments and bytes it read, builds the small
tables (orders, fills, ... and ``mids``) and renames the file into place. The backtest waits
for that (so an export right after it finds the file). If the backtest fails, or its
process dies, the child sees the pipe close without ``done`` and leaves nothing behind; if
the child fails, the backtest carries on without columns (an export then decodes the
journal, as for any other journal).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS_MIN_EVENTS", "COLUMNS_NAME", "ColumnBuilder", "main"]

COLUMNS_NAME = "analytics.columns"
#: a backtest that writes fewer events is left without columns (``columns=None``): decoding
#: it takes a fraction of a second, and the follower's start-up (a Python process importing
#: pyarrow) would be most of a short backtest's time
COLUMNS_MIN_EVENTS = 1 << 17
_ROOT = Path(__file__).resolve().parents[2]
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from replay.analytics._tail import main; main(sys.argv[2])"
)
_READ = 16 << 20  # bytes read per pread
#: rows per part of a market table in the columns file: DuckDB's row group. Parts of any
#: other size cost DuckDB ~30% more to insert (it cuts and merges row groups); the last part
#: of each table is what is left
_PART_ROWS = 122_880


class ColumnBuilder:
    """The backtest's handle on the process building its journal's columns."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self._proc: subprocess.Popen[bytes] | None = None
        self._failed = ""  # why the follower could not start
        # a file left by an earlier run into the same directory describes another journal
        (journal / COLUMNS_NAME).unlink(missing_ok=True)

    @property
    def started(self) -> bool:
        return self._proc is not None or bool(self._failed)

    def start(self) -> None:
        """Start following the journal (from its first byte, whatever was written so far)."""
        if self.started:
            return
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(_ROOT), str(self.journal)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError as err:  # the backtest goes on without columns
            self._failed = f"not written: the column builder did not start ({err})"

    def finish(self, timeout: float = 600.0) -> str:
        """Tell the follower the journal is complete and wait for the columns file: "written",
        or why there is none ("" if never started)."""
        proc = self._proc
        if proc is None:
            return self._failed
        self._proc = None
        try:
            _, err = proc.communicate(b"done\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return f"not written: the column builder took more than {timeout:.0f} s"
        if proc.returncode == 0:
            return "written"
        lines = err.decode(errors="replace").strip().splitlines()
        return "not written: " + (lines[-1] if lines else f"exit status {proc.returncode}")

    def abort(self) -> None:
        """The backtest failed: the follower leaves without writing anything."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.stdin is not None:
            proc.stdin.close()  # end of input without "done": the child gives up
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def main(journal_dir: str) -> None:
    """The follower process: build ``journal_dir``'s columns until told ``done``."""
    import gc

    gc.disable()  # millions of small objects, none cyclic (as in an export)
    follower = _Follower(Path(journal_dir))
    try:
        done = False
        while True:
            if follower.poll():
                continue
            if done:
                break
            ready, _, _ = select.select([0], [], [], 0.02)
            if ready:
                msg = os.read(0, 64)
                if not msg:
                    raise SystemExit(3)  # the backtest gave up (or died): no columns
                done = b"done" in msg
        follower.finish()
    except BaseException:
        follower.abort()
        raise
    sys.stderr.flush()
    os._exit(0)  # done: skip tearing down millions of objects (~0.1 s the backtest waits for)


class _Follower:
    """Reads a journal as it is written and builds its columns (in the follower process)."""

    def __init__(self, journal: Path) -> None:
        import msgspec

        from journal._format import FRAME, MAGIC, MAX_RECORD_BYTES, PREAMBLE, segment_name

        from ._collect import _BATCH, Collected, _Part, _State
        from ._light import LightRecord
        from ._sidecar import ColumnsWriter, SegmentMark, crc32
        from ._tables import market_rows

        self.journal = journal
        self._frame = FRAME
        self._max = MAX_RECORD_BYTES
        self._preamble = PREAMBLE.size
        self._magic = MAGIC
        self._name = segment_name
        self._batch = _BATCH
        self._crc32 = crc32
        self._mark = SegmentMark
        self._collected = Collected
        self._market_rows = market_rows
        self._decode = msgspec.msgpack.Decoder(list[LightRecord]).decode
        self.part = _Part()
        self.state = _State()
        self.c: Any = None  # the Collected, once the header is read
        self.seg = 0
        self.fd = -1
        self.pos = 0  # bytes of the current segment read
        self.crc = 0  # of those bytes
        self.rest = b""  # read, not yet parsed (a frame still being written)
        self.fresh = True  # the current segment's preamble is not read yet
        self.marks: list[Any] = []
        self.writer = ColumnsWriter(journal)
        self.written = {"events": 0, "book_top": 0, "trades": 0}  # rows written out

    def poll(self) -> bool:
        """Read what the journal gained; False if nothing (for now)."""
        if self.fd < 0:
            try:
                self.fd = os.open(self.journal / self._name(self.seg), os.O_RDONLY)
            except FileNotFoundError:
                return False
        data = os.pread(self.fd, _READ, self.pos)
        if data:
            self._feed(data)
            return True
        if not (self.journal / self._name(self.seg + 1)).exists():
            return False
        # the writer moved on: this segment is complete, maybe with bytes written meanwhile
        data = os.pread(self.fd, _READ, self.pos)
        if data:
            self._feed(data)
            return True
        self._end_segment()
        return True

    def _end_segment(self) -> None:
        if self.rest or self.pos < self._preamble:
            raise RuntimeError(f"{self._name(self.seg)} ends inside a record")
        self.marks.append(self._mark(self._name(self.seg), self.pos, self.crc))
        os.close(self.fd)
        self.fd = -1
        self.seg += 1
        self.pos = self.crc = 0
        self.fresh = True

    def _feed(self, data: bytes) -> None:
        start = self.pos - len(self.rest)  # where ``buf`` starts in the segment
        self.pos += len(data)
        self.crc = self._crc32(data, self.crc)
        buf = self.rest + data if self.rest else data
        off = 0
        if self.fresh:
            if len(buf) < self._preamble:
                self.rest = buf  # not even the segment's preamble yet
                return
            if buf[: len(self._magic)] != self._magic:
                raise RuntimeError(f"{self._name(self.seg)} is not a journal segment")
            off = self._preamble
            self.fresh = False
        unpack = self._frame.unpack_from
        fs = self._frame.size
        crc32 = zlib.crc32  # ISA-L's is faster on big buffers only: a record is ~100 bytes
        payloads: list[bytes] = []
        add = payloads.append
        end_of_data = len(buf)
        while off + fs <= end_of_data:
            n, crc = unpack(buf, off)
            end = off + fs + n
            if n > self._max:
                raise RuntimeError(f"{self._name(self.seg)}: implausible record length {n}")
            if end > end_of_data:
                break  # the rest of this frame is not written yet
            payload = buf[off + fs : end]  # bytes: slicing bytes is ~2x cheaper than a view
            if crc32(payload) != crc:
                raise RuntimeError(f"{self._name(self.seg)}: CRC error at byte {start + off}")
            add(payload)
            off = end
            if len(payloads) == self._batch:
                self._records(payloads)
                payloads = []
                add = payloads.append
        if payloads:
            self._records(payloads)
        self.rest = buf[off:]

    def _records(self, payloads: list[Any]) -> None:
        k = len(payloads)
        recs = self._decode(b"\xdd" + k.to_bytes(4, "big") + b"".join(payloads))
        part = self.part
        self.state.batch(part, recs, self.journal / self._name(self.seg), None, 0)
        if self.c is None:
            if part.header is None:
                raise RuntimeError("the journal does not start with its header")
            self.c = self._collected(self.journal, part)
            self.c.start_ledger()
        if part.ledger:
            self.c.feed_ledger(part.ledger)
            part.ledger.clear()
        self._write_market(whole=True)

    def _write_market(self, whole: bool) -> None:
        """Write the market tables' rows read since the last time (``whole``: only whole
        parts of ``_PART_ROWS``, the rest waits).

        Whole parts are written in the order of the seq their last row has (then the tables'
        order), not in the order they happen to be found (that depends on how far the writer
        had got at each read): two runs that write the same journal write the same file."""
        p = self.part
        self.c.first_seq = self.state.first
        have = {
            "events": len(p.book_top) + len(p.trades) + len(p.other),
            "book_top": len(p.book_top),
            "trades": len(p.trades),
        }
        parts = []
        for i, (name, n) in enumerate(have.items()):
            start = self.written[name]
            if whole:
                for stop in range(start + _PART_ROWS, n + 1, _PART_ROWS):
                    last = (
                        self.state.first + stop - 1
                        if name == "events"
                        else (p.book_top if name == "book_top" else p.trades)["seq"][stop - 1]
                    )
                    parts.append((last, i, name, stop))
            elif n > start or not start:  # the rest; an empty table still gets its schema
                parts.append((0, i, name, n))
        for _last, _i, name, stop in sorted(parts):
            rows = (self.written[name], stop)
            self.writer.add(name, self._market_rows(self.c, name, rows))
            self.written[name] = stop

    def finish(self) -> None:
        """The journal is complete: check it is what was read, write the columns file."""
        from journal import segment_paths

        from ._tables import BASE_TABLES, MARKET_TABLES, base_tables

        if self.fd >= 0:
            self._end_segment()
        now = [(p.name, p.stat().st_size) for p in segment_paths(self.journal)]
        if now != [(m.name, m.size) for m in self.marks]:
            raise RuntimeError("the journal is not what was read (changed while being read?)")
        c = self.c
        if c is None:
            raise RuntimeError("no records read")
        self._write_market(whole=False)
        c.last_seq = self.state.expect - 1 if self.state.expect else 0
        rest = base_tables(c, skip=MARKET_TABLES)
        for name, t in rest.items():
            self.writer.add(name, t)
        self.writer.finish(
            BASE_TABLES,
            c.instruments,
            kind=c.header.kind,
            code_version=c.header.code_version,
            events=len(c),
            last_seq=c.last_seq,
            segments=self.marks,
        )

    def abort(self) -> None:
        self.writer.abort()
        if self.fd >= 0:
            os.close(self.fd)
