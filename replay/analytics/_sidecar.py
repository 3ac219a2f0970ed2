"""The export's columns kept next to a backtest's journal (``analytics.columns``).

Theory of operation
-------------------
An export spends most of its time decoding the journal into columns. A backtest can have
them built while it runs (``_tail.py``), and leaves them in the journal directory as one
file, so that ``export`` and the SQL cache start from the columns instead of the journal.

The file holds the *base tables* (``_tables.base_tables``: the raw integers and the ledger's
rows, before any decimal, time or name is added) as Arrow IPC messages, uncompressed, each at
a 64-byte aligned offset: per table its schema, then its record batches. The big market
tables are written in parts while the backtest runs (so little is left to do when it ends),
which is why a table's batches need not be next to each other. Then a JSON manifest (every
message's table, offset, size, CRC-32 and rows) and a trailer::

    b"RMMCOLS1" | messages ... | manifest JSON | u64 manifest length | b"RMMCOLS1"

Read back, the file is memory-mapped and the tables point into it (no copy, no decode).

**It is only used when it describes the journal exactly.** The manifest names every segment
of the journal it was built from with its size and the CRC-32 of all its bytes (computed by
the builder from the very bytes it decoded). The reader recomputes both for the journal as it
is now (ISA-L's CRC-32: ~10 GB/s, a few ms per 100 MB) and uses the columns only if every
segment matches, so a journal that grew (a live journal appended to), was repaired, cut or
rewritten falls back to decoding. The manifest also carries a CRC-32 of each table's bytes
(a damaged file falls back too) and the export's version (``EXPORT_VERSION``: columns written
by another version of the tables fall back). Any error while reading means "no columns".
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.ipc as ipc

from engine import Instrument, InstrumentLoaded
from journal import segment_paths

from ._tables import EXPORT_VERSION
from ._tail import COLUMNS_NAME

__all__ = [
    "COLUMNS_NAME",
    "Columns",
    "ColumnsWriter",
    "SegmentMark",
    "crc32",
    "journal_marks",
    "read_columns",
    "write_columns",
]

try:
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency; a platform may lack a wheel
    _crc32 = zlib.crc32

crc32: Callable[[Any, int], int] = _crc32

_MAGIC = b"RMMCOLS1"
_TRAILER = struct.Struct("<Q8s")
_ALIGN = 64
#: the layout of this file (bump when it changes); the tables' shape is ``EXPORT_VERSION``
_FORMAT = 1


class SegmentMark(msgspec.Struct, array_like=True, frozen=True):
    """One journal segment as the columns saw it."""

    name: str
    size: int
    crc: int  # CRC-32 of the whole file


class _Message(msgspec.Struct, array_like=True, frozen=True):
    """One IPC message of a table: its schema (``rows`` -1) or one of its record batches."""

    table: str
    offset: int
    size: int
    crc: int
    rows: int


class _Manifest(msgspec.Struct, frozen=True):
    format: int
    export_version: str
    segments: list[SegmentMark]
    kind: str
    code_version: str
    events: int
    last_seq: int
    instruments: list[InstrumentLoaded]
    tables: list[str]  # in the export's order
    messages: list[_Message]


class Columns(msgspec.Struct):
    """What an export needs of a journal, read from its columns file instead of decoded."""

    base: dict[str, pa.Table]
    instruments: dict[int, Instrument]
    kind: str
    code_version: str
    events: int
    last_seq: int


def _crc_of_file(path: Path) -> tuple[int, int]:
    """(size, CRC-32) of a file."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if not size:
            return 0, 0
        with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as m:
            return size, crc32(m, 0)


def journal_marks(journal: Path) -> list[SegmentMark]:
    """Every segment of ``journal`` with its size and CRC-32, as it is now."""
    out = []
    for seg in segment_paths(journal):
        size, crc = _crc_of_file(seg)
        out.append(SegmentMark(seg.name, size, crc))
    return out


class ColumnsWriter:
    """Writes the columns file of a journal piece by piece: ``add`` a table or a part of one
    (parts of a table in order), then ``finish``. Nothing is visible at the file's name
    before ``finish`` (a temporary file is renamed)."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.tmp = journal / f".{COLUMNS_NAME}.{os.getpid()}.tmp"
        self._f = open(self.tmp, "wb")  # closed by finish / abort
        self._f.write(_MAGIC)
        self._pos = len(_MAGIC)
        self._schemas: dict[str, pa.Schema] = {}
        self._messages: list[_Message] = []

    def add(self, name: str, t: pa.Table) -> None:
        schema = self._schemas.get(name)
        if schema is None:
            self._schemas[name] = t.schema
            self._write(name, t.schema.serialize(), -1)
        elif schema != t.schema:
            raise ValueError(f"table {name}: a part with another schema")
        for batch in t.to_batches():
            self._write(name, batch.serialize(), batch.num_rows)

    def _write(self, name: str, data: pa.Buffer, rows: int) -> None:
        pad = -self._pos % _ALIGN
        if pad:
            self._f.write(b"\0" * pad)
        offset = self._pos + pad
        self._f.write(data)
        self._pos = offset + data.size
        self._messages.append(_Message(name, offset, data.size, crc32(data, 0), rows))

    def finish(
        self,
        order: tuple[str, ...],
        instruments: dict[int, Instrument],
        *,
        kind: str,
        code_version: str,
        events: int,
        last_seq: int,
        segments: list[SegmentMark],
    ) -> Path:
        """Write the manifest and put the file in place; ``order``: the tables, in the
        export's order (each must have been added); ``segments``: the journal's segments the
        tables were built from."""
        missing = [n for n in order if n not in self._schemas]
        if missing:
            raise ValueError(f"tables never added: {missing}")
        manifest = msgspec.json.encode(
            _Manifest(
                format=_FORMAT,
                export_version=EXPORT_VERSION,
                segments=segments,
                kind=kind,
                code_version=code_version,
                events=events,
                last_seq=last_seq,
                instruments=[i.spec for i in instruments.values()],
                tables=list(order),
                messages=self._messages,
            )
        )
        self._f.write(manifest + _TRAILER.pack(len(manifest), _MAGIC))
        self._f.close()
        out = self.journal / COLUMNS_NAME
        os.replace(self.tmp, out)
        return out

    def abort(self) -> None:
        self._f.close()
        self.tmp.unlink(missing_ok=True)


def write_columns(
    journal: Path,
    base: dict[str, pa.Table],
    instruments: dict[int, Instrument],
    *,
    kind: str,
    code_version: str,
    events: int,
    last_seq: int,
    segments: list[SegmentMark],
) -> Path:
    """Write the columns file of ``journal`` in one go (replaced atomically)."""
    w = ColumnsWriter(journal)
    try:
        for name, t in base.items():
            w.add(name, t)
        return w.finish(
            tuple(base),
            instruments,
            kind=kind,
            code_version=code_version,
            events=events,
            last_seq=last_seq,
            segments=segments,
        )
    except BaseException:
        w.abort()
        raise


def read_columns(journal: Path) -> tuple[Columns | None, str]:
    """The columns of ``journal`` if its columns file matches it exactly, else None; and a
    few words on why not ("absent", "stale: ...", "damaged: ...")."""
    path = journal / COLUMNS_NAME
    if not path.exists():
        return None, "absent"
    try:
        buf = pa.memory_map(str(path)).read_buffer()
        end = buf.size - _TRAILER.size
        if end < len(_MAGIC) or bytes(buf[: len(_MAGIC)]) != _MAGIC:
            return None, "damaged: not a columns file"
        n, magic = _TRAILER.unpack_from(buf, end)
        if magic != _MAGIC or not len(_MAGIC) <= end - n:
            return None, "damaged: no manifest"
        man = msgspec.json.decode(memoryview(buf)[end - n : end], type=_Manifest)
        if man.format != _FORMAT or man.export_version != EXPORT_VERSION:
            return None, "stale: written by another version of the export"
        now = journal_marks(journal)
        if now != man.segments:
            return None, "stale: " + _difference(man.segments, now)
        schemas: dict[str, pa.Schema] = {}
        batches: dict[str, list[pa.RecordBatch]] = {}
        for m in man.messages:
            if m.offset + m.size > end - n:
                return None, f"damaged: a part of {m.table} runs past the manifest"
            data = buf.slice(m.offset, m.size)
            if crc32(data, 0) != m.crc:
                return None, f"damaged: a part of {m.table} fails its CRC"
            if m.rows < 0:
                schemas[m.table] = ipc.read_schema(data)
                batches[m.table] = []
                continue
            batch = ipc.read_record_batch(data, schemas[m.table])
            if batch.num_rows != m.rows:
                return None, f"damaged: a part of {m.table} has the wrong number of rows"
            batches[m.table].append(batch)
        base = {t: pa.Table.from_batches(batches[t], schemas[t]) for t in man.tables}
        instruments = {spec.inst: Instrument(spec) for spec in man.instruments}
    except (OSError, ValueError, KeyError, msgspec.DecodeError, struct.error) as err:
        return None, f"damaged: {err}"
    return Columns(base, instruments, man.kind, man.code_version, man.events, man.last_seq), "used"


def _difference(then: list[SegmentMark], now: list[SegmentMark]) -> str:
    """What changed in the journal since its columns were written, in a few words."""
    if [s.name for s in then] != [s.name for s in now]:
        return f"the journal has {len(now)} segments, the columns saw {len(then)}"
    for a, b in zip(then, now):
        if a.size != b.size:
            verb = "grew" if b.size > a.size else "shrank"
            return f"{b.name} {verb} from {a.size:,} to {b.size:,} bytes"
        if a.crc != b.crc:
            return f"{b.name} changed (same size, other bytes)"
    return "the journal changed"  # pragma: no cover - the lists differ somewhere
