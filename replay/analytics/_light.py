"""Light record types: decode a journal without materialising what the export never reads.

A depth diff carries ~70 level changes and a reconciliation snapshot whole lists of rows; the
export needs none of them, only the event's kind, instrument and times. msgspec ignores the
trailing fields of an ``array_like`` struct that has fewer fields than the message, so these
light twins (same tags, a prefix of the fields) skip the lists without allocating them. Every
other event decodes as its real type. ``tests/test_analytics.py`` checks the twins still
match their real types' tags and field prefixes.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine import (
    EVENT_TYPES,
    AccountSnapshotReceived,
    BookDeltaReceived,
    BookSnapshotReceived,
    IntentRecord,
    JournalHeader,
)

__all__ = ["EVENT_NAMES", "EVENT_TAGS", "LIGHT_TWINS", "LightEventRecord", "LightRecord"]


class _Light(msgspec.Struct, frozen=True, array_like=True, gc=False, tag_field="t"):
    pass


class LightBookSnapshot(_Light, frozen=True, tag=2):
    inst: int
    ts_ns: int


class LightBookDelta(_Light, frozen=True, tag=3):
    inst: int
    ts_ns: int


class LightAccountSnapshot(_Light, frozen=True, tag=50):
    ts_ns: int


#: light twin -> the real event type it stands for
LIGHT_TWINS: dict[type[msgspec.Struct], type[msgspec.Struct]] = {
    LightBookSnapshot: BookSnapshotReceived,
    LightBookDelta: BookDeltaReceived,
    LightAccountSnapshot: AccountSnapshotReceived,
}
_REPLACED = set(LIGHT_TWINS.values())
_EVENT_CLASSES: tuple[type[msgspec.Struct], ...] = (
    *LIGHT_TWINS,
    *(t for t in EVENT_TYPES if t not in _REPLACED),
)

#: decoded class (real or light) -> the event's integer tag and its real name
EVENT_TAGS: dict[type, int] = {
    cls: int(LIGHT_TWINS.get(cls, cls).__struct_config__.tag)  # type: ignore[arg-type]
    for cls in _EVENT_CLASSES
}
EVENT_NAMES: dict[int, str] = {
    EVENT_TAGS[cls]: LIGHT_TWINS.get(cls, cls).__name__ for cls in _EVENT_CLASSES
}

# msgspec needs the union spelled as a type expression; build it from the tuple
_LightEvent: Any = _EVENT_CLASSES[0]
for _cls in _EVENT_CLASSES[1:]:
    _LightEvent = _LightEvent | _cls


class LightEventRecord(
    msgspec.Struct, frozen=True, array_like=True, gc=False, tag_field="t", tag=1
):
    seq: int
    recv_ns: int
    event: _LightEvent


LightRecord = JournalHeader | LightEventRecord | IntentRecord
