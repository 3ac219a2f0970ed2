"""The on-disk journal: framing, writer with group commit, streaming reader, check/repair."""

from ._check import CheckReport, check_journal, repair_journal
from ._format import segment_paths
from ._identity import code_digest, code_version
from ._reader import JournalCorrupt, JournalError, JournalReader, TornTail, read_header
from ._syncer import Syncer, SyncError
from ._writer import DEFAULT_SEGMENT_BYTES, Durability, JournalWriter, WriterStats

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "CheckReport",
    "Durability",
    "JournalCorrupt",
    "JournalError",
    "JournalReader",
    "JournalWriter",
    "SyncError",
    "Syncer",
    "TornTail",
    "WriterStats",
    "check_journal",
    "code_digest",
    "code_version",
    "read_header",
    "repair_journal",
    "segment_paths",
]
