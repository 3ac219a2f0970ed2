"""Journal records: the envelope around events and intents.

A journal is a sequence of records. ``EventRecord`` stamps an event with the sequence number
and receive time the sequencer gave it; ``IntentRecord`` holds the intents one reducer step
produced for the event with the same ``seq`` (absent when the step produced none);
``JournalHeader`` opens a journal. Same editing rules as events: tags are forever, fields are
only appended, with defaults.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._events import Event, InstrumentLoaded
from ._intents import Intent

__all__ = ["FORMAT_VERSION", "EventRecord", "IntentRecord", "JournalHeader", "Record"]

#: bump when the framing or the record layout changes incompatibly
FORMAT_VERSION = 1


class _Record(msgspec.Struct, frozen=True, array_like=True, gc=False, tag_field="t"):
    pass


class JournalHeader(_Record, frozen=True, tag=0):
    """First record of a journal. Holds no wall-clock time, so a rerun is byte-identical."""

    format_version: int
    registry_hash: str  # hash of every (tag, name, fields) of events, intents and records
    code_version: str  # package version
    code_digest: str  # hash of the engine's source files: same digest => same reducer
    kind: str  # "market-data" (an import), "backtest", "live", "paper", "demo"
    config: dict[str, Any]  # the engine config snapshot (never secrets); {} for market data
    instruments: list[InstrumentLoaded]
    source: dict[str, Any] = {}  # where the data came from (files, data journal, ...)


class EventRecord(_Record, frozen=True, tag=1):
    seq: int
    recv_ns: int  # receive time from the sequencer's clock (recorder's clock for imports)
    event: Event


class IntentRecord(_Record, frozen=True, tag=2):
    seq: int  # the EventRecord whose step produced these
    intents: list[Intent]


Record = JournalHeader | EventRecord | IntentRecord
