"""Wire tags are forever: this list pins every tag ever issued.

To add a type: give it a new tag and append a line here. Never edit or delete a line: a
journal written yesterday must decode the same way tomorrow.
"""

from __future__ import annotations

import typing

import msgspec

import engine

ISSUED = {
    ("event", 1): "InstrumentLoaded",
    ("event", 2): "BookSnapshotReceived",
    ("event", 3): "BookDeltaReceived",
    ("event", 4): "TopOfBookUpdated",
    ("event", 5): "TradePrinted",
    ("event", 6): "MarkPriceUpdated",
    ("event", 7): "KlineUpdated",
    ("event", 20): "TimerFired",
    ("event", 21): "SessionStarted",
    ("event", 22): "ConnectionChanged",
    ("event", 23): "OperatorCommanded",
    ("event", 30): "OrderAccepted",
    ("event", 31): "OrderRejected",
    ("event", 32): "OrderFilled",
    ("event", 33): "OrderCanceled",
    ("event", 34): "OrderExpired",
    ("event", 35): "OrderStatusUnknown",
    ("event", 36): "OrderAmended",
    ("event", 37): "CancelRejected",
    ("event", 38): "AmendRejected",
    ("event", 50): "AccountSnapshotReceived",
    ("event", 51): "FundingSettled",
    ("event", 52): "AccountUpdated",
    ("intent", 1): "PlaceOrder",
    ("intent", 2): "CancelOrder",
    ("intent", 3): "CancelAllOrders",
    ("intent", 4): "AmendOrder",
    ("intent", 5): "ScheduleTimer",
    ("intent", 6): "CancelTimer",
    ("intent", 7): "RequestSnapshot",
    ("intent", 8): "RaiseAlert",
    ("intent", 9): "RecordDecision",
    ("record", 0): "JournalHeader",
    ("record", 1): "EventRecord",
    ("record", 2): "IntentRecord",
}


def _current() -> dict[tuple[str, int], str]:
    out = {}
    for kind, types in (
        ("event", engine.EVENT_TYPES),
        ("intent", engine.INTENT_TYPES),
        ("record", engine.RECORD_TYPES),
    ):
        for cls in types:
            key = (kind, cls.__struct_config__.tag)
            assert key not in out, f"tag {key} used twice: {out[key]} and {cls.__name__}"
            out[key] = cls.__name__
    return out


def test_every_tag_keeps_its_meaning():
    current = _current()
    for key, name in ISSUED.items():
        if key in current:
            assert current[key] == name, (
                f"tag {key} was {name}, now {current[key]}: tags are never reused"
            )


def test_every_type_has_a_pinned_tag():
    missing = {k: v for k, v in _current().items() if k not in ISSUED}
    assert not missing, f"new types need a line in ISSUED: {missing}"


def test_unions_hold_every_type():
    assert set(typing.get_args(engine.Event)) == set(engine.EVENT_TYPES)
    assert set(typing.get_args(engine.Intent)) == set(engine.INTENT_TYPES)
    assert set(typing.get_args(engine.Record)) == set(engine.RECORD_TYPES)


def test_structs_are_frozen_array_like():
    for cls in (*engine.EVENT_TYPES, *engine.INTENT_TYPES, *engine.RECORD_TYPES):
        cfg = cls.__struct_config__
        assert cfg.frozen and cfg.array_like, cls.__name__
        assert isinstance(cfg.tag, int), cls.__name__


def test_registry_hash_is_stable_within_a_process():
    assert engine.registry_hash() == engine.registry_hash()
    assert len(engine.registry_entries()) == len(ISSUED)
    # the decoder for records accepts every record type
    msgspec.msgpack.Decoder(engine.Record)
