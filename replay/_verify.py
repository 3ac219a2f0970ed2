"""``replay --verify`` and ``replay --until SEQ --show``.

Verify re-runs the reducer over a journal's events, built from the config snapshot in the
journal's header, and compares the intents it produces now with the intents recorded then —
as bytes: the produced ``IntentRecord`` is encoded and compared with the recorded frame, so
the recorded intents are never decoded unless they differ. The first difference is reported
with its sequence number, what was recorded and what the code produces now.
"""

from __future__ import annotations

import gc
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from engine import (
    Engine,
    EventRecord,
    Intent,
    IntentRecord,
    JournalHeader,
    build_state,
    load_engine_config,
)
from journal import JournalReader, code_digest
from journal._format import FRAME, PREAMBLE, TAG_EVENT, TAG_INTENTS

__all__ = [
    "Divergence",
    "ReplayError",
    "VerifyResult",
    "engine_for",
    "gc_paused",
    "replay_until",
    "verify",
]


class ReplayError(Exception):
    """The journal cannot be replayed as asked; the message says why."""


class Divergence(msgspec.Struct):
    seq: int
    expected: list[Intent]  # recorded
    got: list[Intent]  # produced now

    def describe(self) -> str:
        def fmt(items: list[Intent]) -> str:
            return "\n".join(f"    {i!r}" for i in items) or "    (no intents)"

        return f"first divergence at seq {self.seq}\n  expected (journal):\n{fmt(self.expected)}\n  got (this code):\n{fmt(self.got)}"


class VerifyResult(msgspec.Struct):
    events: int = 0
    intent_records: int = 0
    intents: int = 0
    seconds: float = 0.0
    divergence: Divergence | None = None
    torn: str = ""
    code_digest_matches: bool = True

    @property
    def identical(self) -> bool:
        return self.divergence is None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def engine_for(header: JournalHeader) -> Engine:
    """A fresh engine configured as the journal's header says."""
    if not header.config:
        raise ReplayError(
            f"this journal is {header.kind} with no engine config: nothing ran on it to verify. "
            "Run `replaymm backtest CONFIG --data JOURNAL --out OUT` and verify OUT"
        )
    return Engine(build_state(load_engine_config(header.config)))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Freeze what exists and stop the cyclic GC for a hot loop (engine objects have no cycles
    that matter for the duration); restored afterwards."""
    was = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was:
            gc.enable()


def verify(path: str | Path, progress: Callable[[int], None] | None = None) -> VerifyResult:
    reader = JournalReader(path)
    engine = engine_for(reader.header)
    result = VerifyResult(code_digest_matches=reader.header.code_digest == code_digest())
    decode_event = msgspec.msgpack.Decoder(EventRecord).decode
    decode_intents = msgspec.msgpack.Decoder(IntentRecord).decode
    encode = msgspec.msgpack.Encoder().encode
    step = engine.step
    expected: bytes | None = None  # what the next frame must be: the intents we produced
    expected_intents: list[Intent] = []
    last_seq = 0
    events = records = intents = 0
    started = time.perf_counter()
    crc32 = zlib.crc32
    unpack = FRAME.unpack_from
    fs = FRAME.size
    divergence: Divergence | None = None
    # The frame walk is inlined (rather than using reader.frames()) because this is the
    # hottest loop of the project: a generator hop per record costs ~10% here.
    with gc_paused():
        for path, data, size, is_last in reader.segment_views():
            off = PREAMBLE.size
            while off < size:
                if off + fs > size:
                    reader.frame_error(path, data, off, size, is_last)
                    break
                n, crc = unpack(data, off)
                end = off + fs + n
                payload = data[off + fs : end]
                if end > size or crc32(payload) != crc:
                    reader.frame_error(path, data, off, size, is_last)
                    break
                off = end
                tag = payload[1]
                if tag == TAG_EVENT:
                    if expected is not None:
                        divergence = Divergence(last_seq, [], expected_intents)
                        break
                    rec = decode_event(payload)
                    last_seq = rec.seq
                    events += 1
                    out = step(rec)
                    if out:
                        expected_intents = list(out)
                        expected = encode(IntentRecord(last_seq, expected_intents))
                    if progress is not None and not events & 0xFFFF:
                        progress(events)
                elif tag == TAG_INTENTS:
                    if payload != expected:
                        recorded = decode_intents(payload)
                        got = expected_intents if expected is not None else []
                        divergence = Divergence(recorded.seq, recorded.intents, got)
                        break
                    records += 1
                    intents += len(expected_intents)
                    expected = None
            if divergence is not None:
                break
        if divergence is None and expected is not None:
            divergence = Divergence(last_seq, [], expected_intents)
    result.divergence = divergence
    result.seconds = time.perf_counter() - started
    result.events = events
    result.intent_records = records
    result.intents = intents
    if reader.torn is not None:
        result.torn = reader.torn.describe()
    return result


def replay_until(path: str | Path, until: int | None = None) -> tuple[Engine, JournalHeader]:
    """Replay events up to and including seq ``until`` (all if None); the engine afterwards."""
    reader = JournalReader(path)
    engine = engine_for(reader.header)
    step = engine.step
    with gc_paused():
        for rec in reader.events():
            if until is not None and rec.seq > until:
                break
            step(rec)
    return engine, reader.header


def describe_engine(engine: Engine, depth: int = 5) -> dict[str, Any]:
    """Book top, open orders, positions and strategy state, in plain data."""
    st = engine.state
    out: dict[str, Any] = {"seq": st.seq, "now_ns": st.now_ns, "session": st.session}
    insts = []
    for inst, instrument in st.instruments.items():
        book = st.books[inst]
        top = st.tops[inst]
        bids, asks = book.depth(depth)
        pos = st.positions.get(inst)
        price = instrument.price_text
        qty = instrument.qty_text
        insts.append(
            {
                "symbol": instrument.symbol,
                "book": {
                    "sync": book.sync.name,
                    "last_update_id": book.last_update_id,
                    "bids": [(price(p), qty(q)) for p, q in bids],
                    "asks": [(price(p), qty(q)) for p, q in asks],
                    "gaps": book.gaps,
                },
                "top": {
                    "bid": price(top.bid),
                    "bid_qty": qty(top.bid_qty),
                    "ask": price(top.ask),
                    "ask_qty": qty(top.ask_qty),
                    "update_id": top.update_id,
                },
                "position": None
                if pos is None
                else {
                    "qty": qty(pos.qty),
                    "realized": _money(pos.realized * instrument.minor_per_ticklot),
                    "fees": _money(pos.fees),
                    "funding": _money(pos.funding),
                    "fills": pos.fills,
                },
                "open_orders": [
                    {
                        **o.describe(),
                        "price": price(o.price),
                        "qty": qty(o.qty),
                        "filled": qty(o.filled),
                    }
                    for o in st.orders_for(inst)
                ],
            }
        )
    out["instruments"] = insts
    out["strategy"] = st.strategy.describe()
    out["stats"] = dict(st.stats)
    return out


def _money(minor: int) -> str:
    from engine._units import scaled_to_text

    return scaled_to_text(minor, 8)
