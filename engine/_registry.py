"""The tag registry: every event, intent and record type with its wire tag and fields.

Its hash goes into each journal header, so a reader knows whether the journal was written with
the same wire schema. ``tests/test_registry.py`` pins every tag ever issued.
"""

from __future__ import annotations

import hashlib
import re
import typing

import msgspec

from ._events import EVENT_TYPES
from ._intents import INTENT_TYPES
from ._records import EventRecord, IntentRecord, JournalHeader

__all__ = ["RECORD_TYPES", "registry_entries", "registry_hash"]

RECORD_TYPES: tuple[type[msgspec.Struct], ...] = (JournalHeader, EventRecord, IntentRecord)


def _entry(kind: str, cls: type[msgspec.Struct]) -> str:
    info = msgspec.structs.fields(cls)
    fields = ",".join(f"{f.name}:{_type_name(f.type)}" for f in info)
    tag = cls.__struct_config__.tag
    return f"{kind}:{tag}:{cls.__name__}({fields})"


def _type_name(tp: object) -> str:
    """``int``, ``list[int]``, ``dict[str, str]``, ``InstrumentLoaded | ...``: no module paths."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", repr(tp))


def registry_entries() -> list[str]:
    """One line per type: ``kind:tag:Name(field:type,...)``, in a fixed order."""
    rows = [_entry("event", c) for c in EVENT_TYPES]
    rows += [_entry("intent", c) for c in INTENT_TYPES]
    rows += [_entry("record", c) for c in RECORD_TYPES]
    return rows


def registry_hash() -> str:
    text = "\n".join(registry_entries()).encode()
    return hashlib.sha256(text).hexdigest()[:16]
