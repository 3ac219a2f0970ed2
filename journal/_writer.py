"""Journal writer with group commit.

Theory of operation
-------------------
The writer is also the sequencer's counter: ``append_event`` stamps the next sequence number,
so a journal's event numbers are contiguous by construction and the reader can detect a lost
record. Records are encoded into an in-memory buffer and reach the disk according to the
durability policy:

``every``      write + fdatasync after every record (slowest; one sync ≈ 0.2-0.5 ms here)
``interval``   group commit (the default, 2 ms): once ``interval_ms`` has passed since the last
               hand-off, the buffer is written and a sync process fdatasyncs it while the
               caller goes on appending; a crash loses at most that window plus one sync,
               never a record in the middle
``none``       write in 1 MB chunks, never fsync (backtests, imports: the file can be rebuilt)

``commit()`` forces the buffer out (and syncs unless the policy is ``none``); ``close()``
commits. Segments rotate at a record boundary once they pass ``segment_bytes``.

The writer reads a monotonic clock only to decide *when* to sync; nothing it writes depends
on the clock, so the same records always give the same bytes.

Why the interval sync happens elsewhere: an inline fdatasync (0.2-0.5 ms, 10+ ms on a busy
disk) stops the caller for its whole duration. A child process (``_syncer``) syncs the segment
while the caller keeps encoding; the caller learns what is durable from its answers, read
without blocking at each hand-off. A failed sync is raised to the caller at its next hand-off
or commit, so an EIO is never lost. ``commit()`` and rotation still sync inline: when they
return, everything written is durable.
"""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from engine import (
    FORMAT_VERSION,
    Event,
    EventRecord,
    Intent,
    IntentRecord,
    JournalHeader,
    Record,
)

from ._format import (
    FRAME,
    MAGIC,
    MAX_RECORD_BYTES,
    PREAMBLE,
    TAG_EVENT,
    segment_index,
    segment_name,
    segment_paths,
)
from ._reader import JournalError, TornTail, _open_segment, find_next_frame
from ._syncer import Syncer, SyncError

__all__ = ["DEFAULT_SEGMENT_BYTES", "Durability", "JournalWriter", "WriterStats"]

DEFAULT_SEGMENT_BYTES = 64 << 20
_WRITE_CHUNK = 1 << 20
#: the msgpack bytes an EventRecord starts with (array head and record tag), before its seq:
#: cut from an encoded record whose seq, recv_ns and event take one byte each
_RECORD_HEAD = msgspec.msgpack.encode(EventRecord(0, 0, msgspec.Raw(b"\xc0")))[:-3]  # type: ignore[arg-type]
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
_pack_frame = FRAME.pack
_crc32 = zlib.crc32


class Durability(msgspec.Struct, frozen=True):
    mode: Literal["none", "interval", "every"] = "interval"
    interval_ms: float = 2.0

    @classmethod
    def parse(cls, text: str) -> Durability:
        """``none`` | ``every`` | ``interval`` | ``interval:10`` (ms) | ``10ms``."""
        t = text.strip().lower()
        if t in ("none", "every", "interval"):
            return cls(t)  # type: ignore[arg-type]
        if t.startswith("interval:"):
            t = t.split(":", 1)[1]
        t = t.removesuffix("ms")
        try:
            ms = float(t)
        except ValueError:
            raise ValueError(
                f"durability {text!r}: use none, every, interval or interval:<ms>"
            ) from None
        if not ms > 0:
            raise ValueError(f"durability interval must be > 0 ms, got {text!r}")
        return cls("interval", ms)

    def describe(self) -> str:
        return f"interval:{self.interval_ms:g}ms" if self.mode == "interval" else self.mode


class WriterStats(msgspec.Struct):
    records: int = 0
    events: int = 0
    bytes: int = 0
    writes: int = 0
    syncs: int = 0
    segments: int = 0
    #: append -> durable latencies (ns), only collected when ``track_latency`` is on
    latencies_ns: list[int] = msgspec.field(default_factory=list)


class JournalWriter:
    def __init__(
        self,
        path: Path,
        *,
        next_seq: int,
        segment: int,
        durability: Durability,
        segment_bytes: int,
        track_latency: bool = False,
        hash_records: bool = False,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.path = path
        self.durability = durability
        self.segment_bytes = segment_bytes
        self._stats = WriterStats()
        self._next_seq = next_seq
        self._segment = segment
        self._clock = clock
        self._encode = msgspec.msgpack.Encoder().encode
        self._buf = bytearray()
        self._fd = -1
        self._file_size = 0
        self._interval_ns = int(durability.interval_ms * 1_000_000)
        self._last_sync_ns = clock()
        #: interval mode: when the buffer is next handed off (last hand-off + interval)
        self._sync_due_ns = self._last_sync_ns + self._interval_ns
        self._track = track_latency
        self._pending_append_ns: list[int] = []
        self.durable_seq = next_seq - 1
        self._written_seq = next_seq - 1
        self._closed = False
        #: events are counted by their sequence numbers; other records (header, intents) here
        self._first_seq = next_seq
        self._other_records = 0
        #: write the buffer once it holds this much (a chunk, or what fills the segment)
        self._flush_at = _WRITE_CHUNK
        #: sha256 over every record payload after the header (see ``digest``)
        self._hasher = hashlib.sha256() if hash_records else None
        self._plain = durability.mode == "none" and not track_latency and not hash_records
        #: interval mode with no extras: the inlined append path, with a background sync
        self._grouped = durability.mode == "interval" and not track_latency and not hash_records
        self._syncer: Syncer | None = None
        #: a segment was created without syncing the directory (policy "none"): close() does
        self._dir_dirty = False
        #: hand-offs not yet answered: (last seq written, append times of its records)
        self._in_flight: list[tuple[int, list[int]]] = []

    def digest(self) -> str:
        """sha256 (16 hex digits) of every record after the header, if ``hash_records``."""
        return self._hasher.hexdigest()[:16] if self._hasher is not None else ""

    @property
    def stats(self) -> WriterStats:
        s = self._stats
        s.events = self._next_seq - self._first_seq
        s.records = s.events + self._other_records
        return s

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        header: JournalHeader,
        *,
        durability: Durability | None = None,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        track_latency: bool = False,
        hash_records: bool = False,
        overwrite: bool = False,
    ) -> JournalWriter:
        """Start a new journal at ``path`` (a directory) with ``header`` as its first record."""
        path = Path(path)
        if path.exists():
            existing = segment_paths(path) if path.is_dir() else [path]
            if existing and not overwrite:
                raise JournalError(
                    f"{path} already holds a journal; choose another --out or delete it"
                )
            for p in existing:
                p.unlink()
        path.mkdir(parents=True, exist_ok=True)
        w = cls(
            path,
            next_seq=1,
            segment=0,
            durability=durability or Durability(),
            segment_bytes=segment_bytes,
            track_latency=track_latency,
            hash_records=hash_records,
        )
        w._open_segment(0, first_seq=1)
        hasher, w._hasher = w._hasher, None  # the digest covers the records after the header
        w._other_records += 1
        w._append(header)
        w._hasher = hasher
        w.commit()
        return w

    @classmethod
    def open_append(
        cls,
        path: str | Path,
        *,
        durability: Durability | None = None,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        track_latency: bool = False,
    ) -> tuple[JournalWriter, TornTail | None]:
        """Reopen an existing journal for appending, truncating a torn tail first.

        The cut bytes are kept in a side file next to the segment. Returns the writer and what
        was cut (None if the journal ended cleanly).
        """
        path = Path(path)
        segments = segment_paths(path)
        if not segments:
            raise JournalError(f"{path} holds no journal to append to")
        last = segments[-1]
        last_seq, end, torn = _scan_tail(last)
        if torn is not None:
            cut_to_side_file(last, end)
        index = segment_index(last)
        w = cls(
            path,
            next_seq=last_seq + 1,
            segment=index,
            durability=durability or Durability(),
            segment_bytes=segment_bytes,
            track_latency=track_latency,
        )
        w._fd = os.open(last, os.O_WRONLY | os.O_APPEND)
        w._file_size = os.fstat(w._fd).st_size
        w._flush_at = min(_WRITE_CHUNK, max(1, w.segment_bytes - w._file_size))
        return w, torn

    def _open_segment(self, index: int, first_seq: int) -> None:
        seg = self.path / segment_name(index)
        fd = os.open(seg, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        os.write(fd, PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, index, 0, first_seq))
        self._fd = fd
        self._segment = index
        self._file_size = PREAMBLE.size
        self._flush_at = min(_WRITE_CHUNK, max(1, self.segment_bytes - self._file_size))
        self._stats.segments += 1
        if self.durability.mode != "none":
            _fdatasync(fd)
            _sync_dir(self.path)
        else:
            self._dir_dirty = True

    # -- appending -----------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def append_event(self, recv_ns: int, event: Event) -> EventRecord:
        """Stamp ``event`` with the next sequence number and journal it."""
        seq = self._next_seq
        rec = EventRecord(seq, recv_ns, event)
        self._next_seq = seq + 1
        if self._plain or self._grouped:
            # the hot path: ``_append`` + ``_append_payload`` inlined (two Python calls per
            # event cost about as much as the encoding)
            payload = self._encode(rec)
            n = len(payload)
            if n > MAX_RECORD_BYTES:
                raise JournalError(f"record of {n} bytes exceeds the {MAX_RECORD_BYTES} byte limit")
            buf = self._buf
            buf += _pack_frame(n, _crc32(payload))
            buf += payload
            if self._grouped:
                if self._clock() >= self._sync_due_ns:
                    self._group_commit()
            elif len(buf) >= self._flush_at:
                self._write_buffer()
            return rec
        self._append(rec)
        return rec

    def append_encoded(self, recv_ns: int, encoded: bytes) -> None:
        """``append_event`` for an event already msgpack-encoded (by an import's parse
        workers): the record's bytes are the same as if the event object were appended."""
        seq = self._next_seq
        self._next_seq = seq + 1
        if not self._plain:
            self._append(EventRecord(seq, recv_ns, msgspec.Raw(encoded)))  # type: ignore[arg-type]
            return
        # an EventRecord is a tagged array [tag, seq, recv_ns, event]
        self._append_payload(_RECORD_HEAD + self._encode((seq, recv_ns))[1:] + encoded)

    def append_record(self, rec: EventRecord) -> None:
        """Journal an already-stamped event (its seq must be the next one)."""
        if rec.seq != self._next_seq:
            raise JournalError(f"record seq {rec.seq} is not the next seq {self._next_seq}")
        self._next_seq += 1
        self._append(rec)

    def append_intents(self, seq: int, intents: Sequence[Intent]) -> None:
        """Journal the intents the step of event ``seq`` produced (nothing if none)."""
        if intents:
            self._other_records += 1
            self._append(IntentRecord(seq, list(intents)))

    def _append(self, rec: Record) -> None:
        self._append_payload(self._encode(rec))

    def _append_payload(self, payload: bytes) -> None:
        n = len(payload)
        if n > MAX_RECORD_BYTES:
            raise JournalError(f"record of {n} bytes exceeds the {MAX_RECORD_BYTES} byte limit")
        buf = self._buf
        buf += _pack_frame(n, _crc32(payload))
        buf += payload
        if self._plain:  # durability "none", no extras: the hot path of imports and backtests
            if len(buf) >= self._flush_at:
                self._write_buffer()
            return
        if self._closed:
            raise JournalError("journal writer is closed")
        if self._hasher is not None:
            self._hasher.update(payload)
        if self._track:
            self._pending_append_ns.append(self._clock())
        mode = self.durability.mode
        if mode == "interval":
            if self._clock() >= self._sync_due_ns:
                self._group_commit()
        elif mode == "every":
            self.commit()
        elif len(buf) >= self._flush_at:
            self._write_buffer()

    # -- committing ----------------------------------------------------------------------

    def _write_buffer(self) -> None:
        buf = self._buf
        if not buf:
            return
        view = memoryview(buf)
        written = 0
        try:
            while written < len(buf):
                written += os.write(self._fd, view[written:])
        finally:
            view.release()
        self._file_size += len(buf)
        self._stats.bytes += len(buf)
        self._stats.writes += 1
        buf.clear()
        self._written_seq = self._next_seq - 1
        if self._file_size >= self.segment_bytes:
            self._rotate()
        self._flush_at = min(_WRITE_CHUNK, max(1, self.segment_bytes - self._file_size))

    def flush(self) -> None:
        """Write everything appended so far to the OS, without syncing (a kill -9 keeps it)."""
        self._write_buffer()

    def commit(self) -> None:
        """Write everything appended so far; make it durable unless the policy is ``none``.

        Syncs inline (whatever the sync process is doing): when it returns, every record
        appended before the call is on the disk.
        """
        self._write_buffer()
        if self.durability.mode != "none":
            self.sync()

    def _group_commit(self) -> None:
        """Interval mode: write the buffer and ask the sync process to make it durable."""
        self._write_buffer()
        self._last_sync_ns = now = self._clock()
        self._sync_due_ns = now + self._interval_ns
        syncer = self._syncer
        if syncer is None:
            syncer = self._syncer = Syncer()
        try:
            self._take_answers(syncer.poll())
            syncer.request(self._written_seq, os.fsencode(self.segment_path))
        except SyncError as e:
            raise JournalError(f"journal sync failed: {e}") from e
        self._in_flight.append((self._written_seq, self._pending_append_ns))
        self._pending_append_ns = []

    def _take_answers(self, answers: list[tuple[int, int, int]]) -> None:
        for seq, durable_ns, _took in answers:
            self._stats.syncs += 1
            while self._in_flight and self._in_flight[0][0] <= seq:
                done, appended_ns = self._in_flight.pop(0)
                self._mark_durable(done, appended_ns, durable_ns)

    def _drain(self) -> None:
        """Mark durable what an inline sync just covered, including unanswered hand-offs."""
        now = self._clock()
        for done, appended_ns in self._in_flight:
            self._mark_durable(done, appended_ns, now)
        self._in_flight.clear()

    def sync(self) -> None:
        """fdatasync what has been written.

        Marks durable what was written when it *started*: records written while the disk
        worked may or may not be on it yet.
        """
        upto = self._written_seq
        fd = self._fd
        _fdatasync(fd)
        self._stats.syncs += 1
        self._last_sync_ns = now = self._clock()
        self._sync_due_ns = now + self._interval_ns
        pending, self._pending_append_ns = self._pending_append_ns, []
        if self._in_flight:
            self._drain()
        self._mark_durable(upto, pending, now)

    def _mark_durable(self, seq: int, appended_ns: list[int], durable_ns: int) -> None:
        if seq > self.durable_seq:
            self.durable_seq = seq
        if self._track and appended_ns:
            self._stats.latencies_ns.extend(durable_ns - t for t in appended_ns)

    @property
    def segment_path(self) -> Path:
        """The segment being written (for a sync process that syncs it by name)."""
        return self.path / segment_name(self._segment)

    def _rotate(self) -> None:
        # A finished segment is made durable whatever the policy: a caller that syncs on its own
        # schedule (the live runtime opens the writer with "none" and has a sync process sync
        # the current segment by name) only ever syncs the current file, so the tail of a
        # rotated one would otherwise never reach the disk. Mostly synced already, it is small.
        _fdatasync(self._fd)
        self._drain()
        os.close(self._fd)
        self._open_segment(self._segment + 1, first_seq=self._next_seq)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._write_buffer()
            _fdatasync(self._fd)  # a clean close is always durable
            if self._dir_dirty:
                _sync_dir(self.path)
            self._drain()
            self.durable_seq = self._written_seq
        finally:
            os.close(self._fd)
            self._closed = True
            if self._syncer is not None:
                self._syncer.close()
            # so a late append takes the checked path and raises
            self._plain = self._grouped = False

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scan_tail(segment: Path) -> tuple[int, int, TornTail | None]:
    """(last event seq, end of the last complete frame, torn tail or None) of a segment."""
    data, size, first_seq = _open_segment(segment)
    last_seq = first_seq - 1
    off = PREAMBLE.size
    fs = FRAME.size
    last_event_payload: memoryview | None = None
    while off < size:
        if off + fs > size:
            break
        n, crc = FRAME.unpack_from(data, off)
        end = off + fs + n
        if end > size or zlib.crc32(data[off + fs : end]) != crc:
            break
        if data[off + fs + 1] == TAG_EVENT:
            last_event_payload = data[off + fs : end]
        off = end
    if last_event_payload is not None:
        last_seq = msgspec.msgpack.decode(last_event_payload, type=EventRecord).seq
    if off >= size:
        return last_seq, off, None
    if find_next_frame(data, off + 1, size) >= 0:
        raise JournalError(
            f"{segment} is corrupt at byte {off} and valid records follow: not a torn tail. "
            f"Run `replaymm journal check {segment.parent}`"
        )
    return last_seq, off, TornTail(str(segment), off, size - off, last_seq)


def cut_to_side_file(segment: Path, offset: int) -> Path:
    """Truncate ``segment`` at ``offset``, saving the cut bytes to ``<segment>.cut-<offset>``."""
    side = segment.with_name(f"{segment.name}.cut-{offset}")
    with open(segment, "r+b") as f:
        f.seek(offset)
        tail = f.read()
        with open(side, "wb") as s:
            s.write(tail)
            s.flush()
            os.fsync(s.fileno())
        f.truncate(offset)
        f.flush()
        os.fsync(f.fileno())
    return side
