"""Streaming journal reader.

Theory of operation
-------------------
Each segment is memory-mapped and walked frame by frame with one reused msgspec decoder, so
memory stays flat whatever the journal's size. Every frame's CRC is checked.

When a frame does not parse (its length runs past the end of the file, or its CRC fails) the
reader must decide between two very different things:

* a **torn tail**: the process died in the middle of a write. Only the end of the *last*
  segment can look like this, and nothing valid can follow the break. Reading stops cleanly
  at the last complete record and ``reader.torn`` says where and how many bytes were cut.
* **corruption**: a flipped byte in the middle of a journal. Valid frames follow the break (or
  the segment is not the last one). That is never skipped: ``JournalCorrupt`` names the
  segment, the byte offset and the last good sequence number.

The reader tells them apart by scanning forward from the break for any frame that parses
(plausible length, msgpack array marker, matching CRC). That scan only runs on the error path.
"""

from __future__ import annotations

import mmap
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec

from engine import FORMAT_VERSION, EventRecord, IntentRecord, JournalHeader, Record

from ._format import (
    FRAME,
    MAGIC,
    MAX_RECORD_BYTES,
    PREAMBLE,
    TAG_EVENT,
    TAG_HEADER,
    segment_index,
    segment_paths,
)

__all__ = [
    "JournalCorrupt",
    "JournalError",
    "JournalReader",
    "TornTail",
    "read_header",
]

_FRAME_SIZE = FRAME.size
_unpack_frame = FRAME.unpack_from
# msgpack array markers a record can start with: fixarray (0x90-0x9f), array16 (0xdc)
_ARRAY_MARKERS = frozenset([*range(0x90, 0xA0), 0xDC, 0xDD])


class JournalError(Exception):
    """The journal cannot be read as asked; the message says what to do."""


class JournalCorrupt(JournalError):
    def __init__(self, segment: Path, offset: int, last_seq: int, detail: str) -> None:
        self.segment = segment
        self.offset = offset
        self.last_seq = last_seq
        self.detail = detail
        super().__init__(
            f"corrupt record in {segment} at byte {offset} (last good seq {last_seq}): {detail}; "
            f"run `replaymm journal check {segment.parent}` for the full report"
        )


class TornTail(msgspec.Struct, frozen=True):
    """Where a torn write cut the journal: records before ``offset`` are complete."""

    segment: str
    offset: int
    cut_bytes: int
    last_seq: int

    def describe(self) -> str:
        return (
            f"torn tail: {self.cut_bytes} bytes after byte {self.offset} of {self.segment} "
            f"are an incomplete record (last complete seq {self.last_seq}); "
            "`replaymm journal repair` truncates it"
        )


def _frame_ok(data: memoryview, off: int, size: int) -> bool:
    """Is there a complete, CRC-valid frame at ``off``?"""
    if off + _FRAME_SIZE > size:
        return False
    n, crc = _unpack_frame(data, off)
    end = off + _FRAME_SIZE + n
    if n < 2 or n > MAX_RECORD_BYTES or end > size:
        return False
    if data[off + _FRAME_SIZE] not in _ARRAY_MARKERS:
        return False
    return bool(zlib.crc32(data[off + _FRAME_SIZE : end]) == crc)


def find_next_frame(data: memoryview, start: int, size: int) -> int:
    """Offset of the first valid frame at or after ``start``, or -1."""
    for off in range(start, size - _FRAME_SIZE):
        if _frame_ok(data, off, size):
            return off
    return -1


def _open_segment(path: Path) -> tuple[memoryview, int, int]:
    """(data, size, first_seq) of a segment, preamble checked."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            return memoryview(b""), 0, 0
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    data = memoryview(mm)
    if size < PREAMBLE.size:
        return data, size, 0
    magic, version, _flags, index, _res, first_seq = PREAMBLE.unpack_from(data, 0)
    if magic != MAGIC:
        raise JournalError(f"{path} is not a replaymm journal segment (bad magic)")
    if version != FORMAT_VERSION:
        raise JournalError(
            f"{path} has journal format {version}; this replaymm reads format {FORMAT_VERSION}"
        )
    if index != segment_index(path):
        raise JournalError(f"{path} says it is segment {index}: the files were renamed")
    return data, size, first_seq


class JournalReader:
    """Iterate a journal's records (or raw frames) in order.

    After iteration, ``torn`` is set if the journal ended in a torn write, and ``last_seq`` is
    the last complete event's sequence number.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.segments = segment_paths(self.path)
        if not self.segments:
            raise JournalError(f"{self.path} holds no journal segments")
        self.torn: TornTail | None = None
        self.last_seq = 0
        self._decoder = msgspec.msgpack.Decoder(Record)
        self.header = read_header(self.path)

    # -- raw frames ------------------------------------------------------------------------

    def segment_views(self) -> Iterator[tuple[Path, memoryview, int, bool]]:
        """(segment, data, size, is_last) per segment, preamble checked; frames start at
        ``PREAMBLE.size``. For hot loops that walk frames themselves (see ``frames``); they
        must call ``frame_error`` when a frame does not parse."""
        self.torn = None
        last = len(self.segments) - 1
        for i, path in enumerate(self.segments):
            data, size, _first_seq = _open_segment(path)
            if size < PREAMBLE.size:
                if i == last:
                    if size:
                        self.torn = TornTail(str(path), 0, size, self.last_seq)
                    return
                raise JournalCorrupt(path, 0, self.last_seq, "segment shorter than its preamble")
            yield path, data, size, i == last

    def frames(self) -> Iterator[tuple[Path, int, memoryview]]:
        """Every CRC-checked frame payload as (segment, offset, payload), in order."""
        crc32 = zlib.crc32
        unpack = _unpack_frame
        fs = _FRAME_SIZE
        for path, data, size, is_last in self.segment_views():
            off = PREAMBLE.size
            while off < size:
                if off + fs > size:
                    self.frame_error(path, data, off, size, is_last)
                    return
                n, crc = unpack(data, off)
                end = off + fs + n
                payload = data[off + fs : end]
                if end > size or crc32(payload) != crc:
                    self.frame_error(path, data, off, size, is_last)
                    return
                yield path, off, payload
                off = end

    def frame_error(self, path: Path, data: memoryview, off: int, size: int, is_last: bool) -> None:
        """The frame at ``off`` does not parse: record a torn tail, or raise JournalCorrupt."""
        if off + _FRAME_SIZE > size:
            why = "incomplete frame header"
        else:
            n, _ = _unpack_frame(data, off)
            why = (
                f"record length {n} runs past the end"
                if off + _FRAME_SIZE + n > size
                else "CRC mismatch"
            )
        self._break(path, data, off, size, is_last, why)

    def _break(
        self, path: Path, data: memoryview, off: int, size: int, is_last: bool, why: str
    ) -> None:
        nxt = find_next_frame(data, off + 1, size)
        if nxt < 0 and is_last:
            self.torn = TornTail(str(path), off, size - off, self.last_seq)
            return
        if nxt >= 0:
            why += f"; valid records resume at byte {nxt}"
        else:
            why += "; this is not the last segment, so it cannot be a torn write"
        raise JournalCorrupt(path, off, self.last_seq, why)

    # -- decoded records -------------------------------------------------------------------

    def records(self) -> Iterator[Record]:
        """Every record, decoded, with sequence continuity checked."""
        decode = self._decoder.decode
        expect = 0  # 0 until the first event fixes the start
        last_event = 0
        intents_for = -1
        for path, off, payload in self.frames():
            try:
                rec = decode(payload)
            except msgspec.DecodeError as e:
                raise JournalCorrupt(
                    path, off, self.last_seq, f"undecodable record ({e})"
                ) from None
            t = type(rec)
            if t is EventRecord:
                seq = rec.seq
                if expect and seq != expect:
                    raise JournalCorrupt(
                        path,
                        off,
                        self.last_seq,
                        f"seq {seq} follows {last_event}: records are missing",
                    )
                last_event = self.last_seq = seq
                expect = seq + 1
            elif t is IntentRecord:
                if rec.seq != last_event or intents_for == last_event:
                    raise JournalCorrupt(
                        path,
                        off,
                        self.last_seq,
                        f"intents for seq {rec.seq} after event {last_event}",
                    )
                intents_for = last_event
            yield rec

    def events(self) -> Iterator[EventRecord]:
        """Only the event records, CRC- and sequence-checked, in one tight loop (the hot path
        of backtests and replays: no per-record generator layering)."""
        for rec, _payload in self.events_with_payload():
            yield rec

    def events_with_payload(self) -> Iterator[tuple[EventRecord, memoryview]]:
        """Event records with their encoded bytes (a backtest copies market events as bytes)."""
        decode = msgspec.msgpack.Decoder(EventRecord).decode
        crc32 = zlib.crc32
        unpack = _unpack_frame
        fs = _FRAME_SIZE
        expect = 0
        for path, data, size, is_last in self.segment_views():
            off = PREAMBLE.size
            while off < size:
                if off + fs > size:
                    self.frame_error(path, data, off, size, is_last)
                    return
                n, crc = unpack(data, off)
                end = off + fs + n
                payload = data[off + fs : end]
                if end > size or crc32(payload) != crc:
                    self.frame_error(path, data, off, size, is_last)
                    return
                if payload[1] == TAG_EVENT:
                    try:
                        rec = decode(payload)
                    except msgspec.DecodeError as e:
                        raise JournalCorrupt(
                            path, off, self.last_seq, f"undecodable record ({e})"
                        ) from None
                    seq = rec.seq
                    if expect and seq != expect:
                        raise JournalCorrupt(
                            path,
                            off,
                            self.last_seq,
                            f"seq {seq} follows {expect - 1}: records are missing",
                        )
                    expect = seq + 1
                    self.last_seq = seq
                    yield rec, payload
                off = end


def read_header(path: str | Path) -> JournalHeader:
    """The JournalHeader of a journal (the first frame of segment 0)."""
    path = Path(path)
    segments = segment_paths(path)
    if not segments:
        raise JournalError(f"{path} holds no journal segments")
    data, size, _ = _open_segment(segments[0])
    off = PREAMBLE.size
    if size < off + _FRAME_SIZE:
        raise JournalError(f"{path} is empty: it has no header record")
    n, crc = _unpack_frame(data, off)
    payload = data[off + _FRAME_SIZE : off + _FRAME_SIZE + n]
    if len(payload) != n or zlib.crc32(payload) != crc or payload[1] != TAG_HEADER:
        raise JournalCorrupt(segments[0], off, 0, "the header record is damaged")
    return msgspec.msgpack.decode(payload, type=JournalHeader)
