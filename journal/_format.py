"""The on-disk layout of a journal.

A journal is a directory of segment files ``segment-000000.rmj``, ``segment-000001.rmj``, ...
Each segment starts with a 24-byte preamble::

    magic  b"RMMJ"        4 bytes
    format version        u16 little-endian
    flags                 u16 (0)
    segment index         u32
    reserved              u32 (0)
    first sequence number u64 (the seq the writer expected next when it opened the segment)

followed by frames::

    payload length        u32 little-endian
    CRC-32 of payload     u32 little-endian (zlib.crc32)
    payload               msgpack of one Record (JournalHeader | EventRecord | IntentRecord)

A wrong length byte is caught too: it frames the wrong bytes, whose CRC then fails. The first
frame of segment 0 is the ``JournalHeader``. A torn write can only leave an incomplete *last*
frame of the *last* segment; anything else that fails to parse is corruption (see
``_reader.py`` for how the two are told apart).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from engine import FORMAT_VERSION

__all__ = [
    "FRAME",
    "MAGIC",
    "MAX_RECORD_BYTES",
    "PREAMBLE",
    "TAG_EVENT",
    "TAG_HEADER",
    "TAG_INTENTS",
    "segment_index",
    "segment_name",
    "segment_paths",
]

MAGIC = b"RMMJ"
PREAMBLE = struct.Struct("<4sHHIIQ")
FRAME = struct.Struct("<II")
#: a frame claiming more than this is treated as corrupt (largest real records are a few 100 kB)
MAX_RECORD_BYTES = 16 << 20
# msgpack encodes an array-like record as [tag, ...]; byte 1 of the payload is the tag
TAG_HEADER = 0
TAG_EVENT = 1
TAG_INTENTS = 2

_SEGMENT_RE = re.compile(r"^segment-(\d{6})\.rmj$")

assert FORMAT_VERSION < 1 << 16


def segment_name(index: int) -> str:
    return f"segment-{index:06d}.rmj"


def segment_index(path: Path) -> int:
    m = _SEGMENT_RE.match(path.name)
    if not m:
        raise ValueError(f"not a journal segment: {path}")
    return int(m.group(1))


def segment_paths(journal: Path) -> list[Path]:
    """The segment files of ``journal`` in order."""
    if not journal.is_dir():
        raise FileNotFoundError(f"{journal} is not a journal directory")
    return sorted(p for p in journal.iterdir() if _SEGMENT_RE.match(p.name))
