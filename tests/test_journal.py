"""The journal: every type round-trips; torn tails recover; any flipped byte is detected."""

from __future__ import annotations

import os
import typing
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine import (
    EventRecord,
    IntentRecord,
    JournalHeader,
    Side,
    TradePrinted,
    registry_hash,
)
from journal import (
    Durability,
    JournalCorrupt,
    JournalError,
    JournalReader,
    JournalWriter,
    check_journal,
    repair_journal,
)
from journal._format import PREAMBLE

INT64 = st.integers(-(2**63), 2**63 - 1)


def _strategy_for(tp: object) -> st.SearchStrategy[typing.Any]:
    origin = typing.get_origin(tp)
    if tp is int:
        return INT64
    if tp is str:
        return st.text(max_size=40)
    if tp is bool:
        return st.booleans()
    if tp is float:
        return st.floats(allow_nan=False)
    if isinstance(tp, type) and issubclass(tp, engine.Side.__mro__[1]):  # IntEnum
        return st.sampled_from(list(tp))  # type: ignore[arg-type]
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _struct(tp)
    if origin is list:
        (arg,) = typing.get_args(tp)
        return st.lists(_strategy_for(arg), max_size=6)
    if origin is dict:
        k, v = typing.get_args(tp)
        return st.dictionaries(
            _strategy_for(k), _strategy_for(v) if v is not typing.Any else st.integers(), max_size=4
        )
    raise NotImplementedError(tp)


def _struct(cls: type[msgspec.Struct]) -> st.SearchStrategy[typing.Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _strategy_for(hints[f.name]) for f in msgspec.structs.fields(cls)}
    return st.builds(cls, **fields)


EVENTS = st.one_of([_struct(c) for c in engine.EVENT_TYPES])
INTENTS = st.one_of([_struct(c) for c in engine.INTENT_TYPES])


def _header(**kw: typing.Any) -> JournalHeader:
    base = dict(
        format_version=engine.FORMAT_VERSION,
        registry_hash=registry_hash(),
        code_version="test",
        code_digest="test",
        kind="test",
        config={},
        instruments=[],
    )
    base.update(kw)
    return JournalHeader(**base)


@settings(
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(events=st.lists(st.tuples(EVENTS, st.lists(INTENTS, max_size=3)), min_size=1, max_size=8))
def test_every_event_and_intent_round_trips(tmp_path_factory, events):
    path = tmp_path_factory.mktemp("j") / "j"
    with JournalWriter.create(path, _header(), durability=Durability("none")) as w:
        for ev, intents in events:
            rec = w.append_event(7, ev)
            w.append_intents(rec.seq, intents)
    got = list(JournalReader(path).records())
    expected: list[typing.Any] = []
    for i, (ev, intents) in enumerate(events, 1):
        expected.append(EventRecord(i, 7, ev))
        if intents:
            expected.append(IntentRecord(i, intents))
    assert isinstance(got[0], JournalHeader)
    assert got[1:] == expected


def test_every_type_is_covered_by_the_round_trip_strategies():
    # a type without a strategy would make the test above silently skip it
    # (building a strategy resolves every field type eagerly and raises on an unknown one)
    for cls in (*engine.EVENT_TYPES, *engine.INTENT_TYPES):
        assert _struct(cls) is not None


def _small_journal(path: Path, n: int = 30) -> list[int]:
    """A journal of ``n`` trades (+ intents every 3rd); returns each frame's end offset."""
    with JournalWriter.create(path, _header(), durability=Durability("none")) as w:
        for i in range(n):
            rec = w.append_event(1000 + i, TradePrinted(0, i, i, 100 + i, 1 + i % 4, Side.BUY))
            if i % 3 == 0:
                w.append_intents(rec.seq, [engine.CancelOrder(0, f"r1-{i}-0")])
    seg = path / "segment-000000.rmj"
    data = seg.read_bytes()
    ends = []
    off = PREAMBLE.size
    while off < len(data):
        n_, _ = engine_frame(data, off)
        off += 8 + n_
        ends.append(off)
    return ends


def engine_frame(data: bytes, off: int) -> tuple[int, int]:
    from journal._format import FRAME

    return FRAME.unpack_from(data, off)


def test_torn_tail_at_every_byte_of_the_last_record(tmp_path):
    src = tmp_path / "src"
    ends = _small_journal(src)
    seg = (src / "segment-000000.rmj").read_bytes()
    last_start = ends[-2]
    full = list(JournalReader(src).records())
    for cut in range(last_start, len(seg)):
        j = tmp_path / f"cut{cut}"
        j.mkdir()
        (j / "segment-000000.rmj").write_bytes(seg[:cut])
        reader = JournalReader(j)
        got = list(reader.records())
        assert got == full[:-1], cut
        if cut > last_start:
            assert reader.torn is not None and reader.torn.offset == last_start
            assert reader.torn.cut_bytes == cut - last_start
        report, side = repair_journal(j)
        assert check_journal(j).ok
        assert list(JournalReader(j).records()) == full[:-1]
        if cut > last_start:
            assert side and side[0].read_bytes() == seg[last_start:cut]


def test_every_flipped_byte_is_detected(tmp_path):
    src = tmp_path / "src"
    ends = _small_journal(src, n=12)
    seg = (src / "segment-000000.rmj").read_bytes()
    good = list(JournalReader(src).records())
    # every byte of every frame (the preamble is checked separately)
    for pos in range(PREAMBLE.size, len(seg)):
        flipped = bytearray(seg)
        flipped[pos] ^= 0x40
        j = tmp_path / "f"
        j.mkdir(exist_ok=True)
        (j / "segment-000000.rmj").write_bytes(bytes(flipped))
        reader = None
        try:
            reader = JournalReader(j)
            got = list(reader.records())
        except (JournalCorrupt, JournalError):
            continue  # detected and named
        # not raised: then the damage must have been reported as a torn tail, never silently
        # read as different data
        assert reader.torn is not None, f"flip at byte {pos} went unnoticed"
        assert got == good[: len(got)]
    assert ends


def test_corruption_names_segment_offset_and_seq(tmp_path):
    src = tmp_path / "src"
    ends = _small_journal(src, n=30)
    seg = src / "segment-000000.rmj"
    data = bytearray(seg.read_bytes())
    data[ends[10] + 12] ^= 0xFF  # a byte inside the 12th frame's payload
    seg.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as info:
        list(JournalReader(src).records())
    e = info.value
    assert e.segment == seg and e.offset == ends[10]
    assert "last good seq" in str(e) and "segment-000000.rmj" in str(e)
    report = check_journal(src)
    assert report.corrupt and report.corrupt_offset == ends[10]
    with pytest.raises(JournalError, match="cut-corruption"):
        repair_journal(src)
    _, side = repair_journal(src, cut_corruption=True)
    assert side and check_journal(src).ok


def test_rotation_and_reopen_after_a_torn_tail(tmp_path):
    path = tmp_path / "j"
    w = JournalWriter.create(path, _header(), durability=Durability("none"), segment_bytes=4096)
    for i in range(2000):
        w.append_event(i, TradePrinted(0, i, i, 100, 1, Side.SELL))
    w.close()
    segs = sorted(path.glob("segment-*.rmj"))
    assert len(segs) > 5
    report = check_journal(path)
    assert report.ok and report.events == 2000 and report.last_seq == 2000
    # tear the last segment mid-record, then reopen for append: the tail is cut and kept
    last = segs[-1]
    size = last.stat().st_size
    with open(last, "r+b") as f:
        f.truncate(size - 3)
    w2, torn = JournalWriter.open_append(path, durability=Durability("every"))
    assert torn is not None
    rec = w2.append_event(5000, TradePrinted(0, 1, 1, 1, 1, Side.BUY))
    w2.close()
    assert rec.seq == 2000  # the torn record (seq 2000) is gone; numbering continues after 1999
    report = check_journal(path)
    assert report.ok and report.last_seq == 2000
    assert list(path.glob("*.cut-*"))


def test_a_gap_in_sequence_numbers_is_corruption(tmp_path):
    path = tmp_path / "j"
    with JournalWriter.create(path, _header(), durability=Durability("none")) as w:
        w.append_event(1, TradePrinted(0, 1, 1, 1, 1, Side.BUY))
        w._next_seq += 1  # simulate a lost record
        w.append_event(2, TradePrinted(0, 1, 1, 1, 1, Side.BUY))
    with pytest.raises(JournalCorrupt, match="records are missing"):
        list(JournalReader(path).records())


def test_durability_policies(tmp_path):
    for policy in ("none", "every", "interval:2", "5ms"):
        d = Durability.parse(policy)
        path = tmp_path / policy.replace(":", "_")
        with JournalWriter.create(path, _header(), durability=d, track_latency=True) as w:
            for i in range(200):
                w.append_event(i, TradePrinted(0, i, i, 1, 1, Side.BUY))
            stats = w.stats
        assert check_journal(path).events == 200
        if d.mode == "every":
            assert stats.syncs >= 200
        if d.mode == "none":
            assert stats.syncs == 0
    for bad in ("sometimes", "interval:0", "-5ms"):
        with pytest.raises(ValueError):
            Durability.parse(bad)


def test_group_commit_syncs_in_the_background_across_rotations(tmp_path):
    # a tiny interval and small segments: many hand-offs to the sync process, several of them
    # racing a rotation (which syncs the finished segment itself before closing it)
    path = tmp_path / "j"
    d = Durability.parse("interval:0.01")
    w = JournalWriter.create(path, _header(), durability=d, segment_bytes=4096)
    for i in range(3000):
        w.append_event(i, TradePrinted(0, i, i, 1, 1, Side.BUY))
    w.commit()
    assert w.durable_seq == 3000
    assert w.stats.syncs > 10
    assert w.stats.segments > 5
    w.close()
    assert check_journal(path).events == 3000


def test_a_failed_background_sync_reaches_the_caller(tmp_path):
    # the sync process opens the segment by name: with the file gone its sync fails, and the
    # writer must say so at its next hand-off instead of counting records as durable
    path = tmp_path / "j"
    w = JournalWriter.create(path, _header(), durability=Durability.parse("interval:0.01"))
    (path / "segment-000000.rmj").unlink()

    def append_until_it_fails() -> None:
        for i in range(1_000_000):
            w.append_event(i, TradePrinted(0, i, i, 1, 1, Side.BUY))

    with pytest.raises(JournalError, match="journal sync failed"):
        append_until_it_fails()
    assert w.durable_seq < w.next_seq - 1
    w.close()


def test_header_and_refusals(tmp_path):
    path = tmp_path / "j"
    JournalWriter.create(path, _header(kind="x", config={"a": 1})).close()
    assert JournalReader(path).header.config == {"a": 1}
    with pytest.raises(JournalError, match="already holds a journal"):
        JournalWriter.create(path, _header())
    (tmp_path / "empty").mkdir()
    with pytest.raises(JournalError, match="no journal segments"):
        JournalReader(tmp_path / "empty")
    seg = path / "segment-000000.rmj"
    data = bytearray(seg.read_bytes())
    data[0:4] = b"XXXX"
    seg.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="bad magic"):
        JournalReader(path)
    assert os.path.exists(seg)


def test_the_sync_process_spaces_its_syncs(tmp_path):
    # after one sync, four requests within the gap wait for it and share one sync
    import time

    from journal import Syncer

    seg = tmp_path / "seg"
    seg.write_bytes(b"x")
    syncer = Syncer(min_gap_ns=200_000_000)

    def answers_until(seq: int) -> list[tuple[int, int, int]]:
        got: list[tuple[int, int, int]] = []
        deadline = time.monotonic() + 10
        while (not got or got[-1][0] < seq) and time.monotonic() < deadline:
            got += syncer.poll()
            time.sleep(0.005)
        return got

    try:
        syncer.request(1, os.fsencode(seg))
        first = answers_until(1)
        for seq in range(2, 6):
            syncer.request(seq, os.fsencode(seg))
        rest = answers_until(5)
    finally:
        syncer.close()
    assert [a[0] for a in first] == [1] and [a[0] for a in rest] == [5]
    (_, first_done, first_took), (_, second_done, second_took) = first[0], rest[0]
    assert (second_done - second_took) - (first_done - first_took) >= 200_000_000
