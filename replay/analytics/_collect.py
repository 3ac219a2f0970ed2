"""One pass over a journal -> raw columns: the export's hot loop.

Theory of operation
-------------------
Export speed is decode speed. Three things keep the per-event Python work small:

- **Batches.** The loop walks the frames itself (as ``JournalReader.frames`` does), checks
  each CRC, and collects up to ``_BATCH`` payloads; one msgspec call decodes the batch
  (the payloads joined behind a msgpack array header) with the *light* record types
  (``_light.py``: depth diffs without their level lists). One short loop sorts the records
  into book tops, trades and the rest, and the columns are filled per batch with
  ``map(attrgetter(...))`` (C loops), not with an ``append`` per field per event.
- **Two processes.** A journal of more than ``_SPLIT_MIN_BYTES`` is cut in two byte ranges;
  a forked child scans the second while this process scans the first. The child resyncs on
  the first CRC-valid frame after the cut; the first range's scan must end exactly there
  (its last frame's end), and the two seq ranges must join, or the whole journal is scanned
  again in one process. The child hands its columns back pickled through a pipe.
- **Sequential state after the merge.** The scans only build market columns; what needs the
  journal in order (orders' life cycles, positions, money: the ``Ledger``, a few % of the
  records) is kept as decoded records and replayed here after the merge. The one piece of
  market state the ledger reads, the book top when a fill happens, is looked up in the merged
  ``book_top`` columns by seq.

Decimals are built at the end, vectorised: ticks/lots/minor units times a per-instrument
factor, reinterpreted as DECIMAL(18, d) (``_columns.decimal_column``).
"""

from __future__ import annotations

import bisect
import os
import pickle
import warnings
import zlib
from array import array
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

from engine import (
    AccountUpdated,
    FundingSettled,
    Instrument,
    InstrumentLoaded,
    IntentRecord,
    JournalHeader,
    KlineUpdated,
    MarkPriceUpdated,
    TopOfBookUpdated,
    TradePrinted,
)
from journal import JournalCorrupt, JournalReader
from journal._format import FRAME, PREAMBLE
from journal._reader import find_next_frame

from ._columns import IntColumns, int_column
from ._ledger import ORDER_EVENT_TYPES, Ledger
from ._light import EVENT_TAGS, LightEventRecord, LightRecord

__all__ = ["Collected", "collect"]

_BATCH = 1 << 14  # frames decoded per msgspec call
_SPLIT_MIN_BYTES = 8 << 20  # smaller journals are scanned in one process

_TOP_FIELDS = ("ts_ns", "inst", "update_id", "bid", "bid_qty", "ask", "ask_qty")
_TRADE_FIELDS = ("ts_ns", "inst", "trade_id", "price", "qty", "taker_side")
_LEDGER_TYPES = (*ORDER_EVENT_TYPES, FundingSettled, AccountUpdated, InstrumentLoaded)


class _Part:
    """What the scan of one byte range found (plain arrays and lists: it crosses a pipe)."""

    def __init__(self) -> None:
        # events other than book tops and trades; the ``events`` table is the three merged
        # (so the two most frequent kinds cost no extra columns in the loop)
        self.other = IntColumns("seq", "recv_ns", "ts_ns", "tag", "inst")
        self.book_top = IntColumns(
            "seq", "recv_ns", "ts_ns", "inst", "update_id", "bid_ticks", "bid_qty_lots",
            "ask_ticks", "ask_qty_lots",
        )  # fmt: skip
        self.trades = IntColumns(
            "seq", "recv_ns", "ts_ns", "inst", "trade_id", "price_ticks", "qty_lots", "taker_side"
        )
        self.marks = IntColumns(
            "seq", "recv_ns", "ts_ns", "inst", "mark_e8", "index_e8", "funding_rate_e8",
            "next_funding_ns",
        )  # fmt: skip
        self.klines = IntColumns(
            "seq", "recv_ns", "ts_ns", "inst", "open_ns", "close_ns", "open_ticks", "high_ticks",
            "low_ticks", "close_ticks", "volume_lots", "quote_volume_minor", "trades",
            "taker_buy_volume_lots", "closed",
        )  # fmt: skip
        self.kline_intervals: list[str] = []
        # in journal order: event records for the ledger, and (IntentRecord, recv of its event)
        self.ledger: list[Any] = []
        self.header: JournalHeader | None = None
        self.first_seq = 0  # of the first event record, 0 if none
        self.last_seq = 0
        self.end: tuple[int, int] = (0, 0)  # (segment, offset) where the scan stopped
        self.torn: str | None = None

    def extend(self, other: _Part) -> None:
        """Append ``other``, the part right after this one."""
        for mine, theirs in (
            (self.other, other.other),
            (self.book_top, other.book_top),
            (self.trades, other.trades),
            (self.marks, other.marks),
            (self.klines, other.klines),
        ):
            for name, col in mine.cols.items():
                col.extend(theirs.cols[name])
        self.kline_intervals += other.kline_intervals
        self.ledger += other.ledger
        self.last_seq = other.last_seq or self.last_seq
        self.end = other.end
        self.torn = other.torn


class Collected:
    """What one pass found: the raw columns, the ledger, the instruments, the journal's extent."""

    def __init__(self, path: Path, part: _Part) -> None:
        self.path = path
        self.other = part.other
        self.book_top = part.book_top
        self.trades = part.trades
        self.marks = part.marks
        self.klines = part.klines
        self.kline_intervals = part.kline_intervals
        self.ledger = Ledger(self._top_of)
        self.instruments: dict[int, Instrument] = {}
        self.header: Any = part.header
        self.first_seq = part.first_seq  # of the first event (the scan's follower sets it)
        self.last_seq = part.last_seq
        self.torn = part.torn
        self._seq = 0  # the seq of the record the ledger is at

    def _top_of(self, inst: int) -> tuple[int, int] | None:
        """The latest bookTicker of ``inst`` before the ledger's current record (searching back
        at most 10,000 tops: the last one is almost always it)."""
        top = self.book_top
        insts, bids, asks = top["inst"], top["bid_ticks"], top["ask_ticks"]
        end = bisect.bisect_left(top["seq"], self._seq)
        for i in range(end - 1, max(-1, end - 10_000), -1):
            if insts[i] == inst:
                return bids[i], asks[i]
        return None

    def __len__(self) -> int:
        """Events read."""
        return len(self.other) + len(self.book_top) + len(self.trades)

    def events_table(self, seqs: tuple[int, int] | None = None) -> pa.Table:
        """Every event's seq, receive time, exchange time, instrument and type tag (int16; the
        names are ``_light.EVENT_NAMES``), in seq order. ``seqs``: only (a copy of) the
        events with ``lo <= seq < hi`` (found by bisection: each part is in seq order)."""
        parts = []
        for cols, tag in (
            (self.book_top, EVENT_TAGS[TopOfBookUpdated]),
            (self.trades, EVENT_TAGS[TradePrinted]),
            (self.other, None),
        ):
            rows = None
            if seqs is not None:
                seq = cols["seq"]
                rows = (bisect.bisect_left(seq, seqs[0]), bisect.bisect_left(seq, seqs[1]))
            n = len(cols) if rows is None else rows[1] - rows[0]
            tags = int_column(cols["tag"], rows) if tag is None else pa.repeat(tag, n)
            parts.append(
                pa.table(
                    {
                        "seq": int_column(cols["seq"], rows),
                        "recv_ns": int_column(cols["recv_ns"], rows),
                        "ts_ns": int_column(cols["ts_ns"], rows),
                        "inst": int_column(cols["inst"], rows),
                        "tag": tags.cast(pa.int16()),
                    }
                )
            )
        return pa.concat_tables(parts).sort_by("seq").combine_chunks()

    def replay_ledger(self, records: list[Any]) -> None:
        """Orders, fills, positions and money, in journal order."""
        self.start_ledger()
        self.feed_ledger(records)

    def start_ledger(self) -> None:
        """Load the header's instruments into the ledger (before the first ``feed_ledger``)."""
        self._seq = 0
        for spec in self.header.instruments:
            self._load_instrument(spec)

    def feed_ledger(self, records: list[Any]) -> None:
        """The ledger's next records (event records and (IntentRecord, receive time) pairs);
        the book tops before them must be in ``book_top`` already."""
        led = self.ledger
        for item in records:
            if type(item) is tuple:
                rec, recv = item
                led.on_intents(rec.seq, recv, rec.intents)
                continue
            seq, recv, e = item.seq, item.recv_ns, item.event
            t = type(e)
            if t in ORDER_EVENT_TYPES:
                self._seq = seq
                led.on_order_event(seq, recv, e)
            elif t is FundingSettled:
                led.on_funding(seq, recv, e)
            elif t is AccountUpdated:
                led.on_account(seq, recv, e)
            elif t is InstrumentLoaded:
                self._load_instrument(e)

    def _load_instrument(self, spec: InstrumentLoaded) -> None:
        ins = Instrument(spec)
        self.instruments[spec.inst] = ins
        self.ledger.instruments[spec.inst] = ins


def collect(path: Path, progress: Callable[[int], None] | None = None) -> Collected:
    """Read the journal at ``path`` once; ``progress`` receives bytes read so far."""
    reader = JournalReader(path)
    sizes = [p.stat().st_size for p in reader.segments]
    part = None
    if sum(sizes) >= _SPLIT_MIN_BYTES and (os.cpu_count() or 1) > 1 and hasattr(os, "fork"):
        part = _collect_split(reader, sizes, progress)
    if part is None:
        part = _scan(reader, 0, PREAMBLE.size, len(sizes), 0, progress, 0)
    out = Collected(path, part)
    out.header = reader.header
    out.replay_ledger(part.ledger)
    if progress is not None:
        progress(sum(sizes))
    return out


def _cut(reader: JournalReader, sizes: list[int]) -> tuple[int, int] | None:
    """(segment, offset of a frame) near the middle of the journal's bytes, or None."""
    half = sum(sizes) // 2
    seg = 0
    for size in sizes:
        if half < size:
            break
        half -= size
        seg += 1
    else:
        return None
    if half < PREAMBLE.size + (1 << 20) and seg > 0:
        return seg, PREAMBLE.size  # a segment starts close to the middle: cut there
    for i, (_path, data, size, _last) in enumerate(reader.segment_views()):
        if i == seg:
            off = find_next_frame(data, max(half, PREAMBLE.size), size)
            return None if off < 0 else (seg, off)
    return None


def _collect_split(
    reader: JournalReader, sizes: list[int], progress: Callable[[int], None] | None
) -> _Part | None:
    """Scan the two halves in two processes; None when the split does not hold (then the
    caller scans the whole journal in one process)."""
    cut = _cut(reader, sizes)
    if cut is None:
        return None
    seg, off = cut
    r, w = os.pipe()
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a process with threads; the child only runs
        # this module's scan (no locks of other threads' libraries) and leaves by os._exit
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: scan the second half, send it, leave without cleanup
        code = 0
        try:
            os.close(r)
            try:
                second: Any = _scan(JournalReader(reader.path), seg, off, len(sizes), 0, None, 0)
            except Exception as err:  # the parent rescans and reports it
                second = repr(err)
            with os.fdopen(w, "wb") as f:
                pickle.dump(second, f, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    pipe = os.fdopen(r, "rb")
    try:
        first = _scan(reader, 0, PREAMBLE.size, seg, off, progress, 0)
        second = pickle.load(pipe)
    finally:
        pipe.close()  # first: a child still writing then fails instead of waiting for us
        os.waitpid(pid, 0)
    if (
        not isinstance(second, _Part)
        or first.torn is not None
        or first.end != (seg, off)
        or (first.last_seq and second.first_seq and second.first_seq != first.last_seq + 1)
    ):
        return None
    if second.ledger and type(second.ledger[0]) is tuple and second.ledger[0][1] is None:
        rec, _ = second.ledger[0]
        second.ledger[0] = (rec, _recv_of(first, rec.seq))
    first.extend(second)
    return first


def _recv_of(part: _Part, seq: int) -> int | None:
    """The receive time of event ``seq`` if ``part`` holds it (it is the last one)."""
    for cols in (part.book_top, part.trades, part.other):
        if len(cols) and cols["seq"][-1] == seq:
            return cols["recv_ns"][-1]
    return None


def _scan(
    reader: JournalReader,
    seg0: int,
    off0: int,
    seg1: int,
    off1: int,
    progress: Callable[[int], None] | None,
    done0: int,
) -> _Part:
    """Scan the frames from (``seg0``, ``off0``) up to the frame starting at (``seg1``,
    ``off1``) (exclusive; ``seg1`` past the last segment: to the end)."""
    out = _Part()
    crc32 = zlib.crc32
    unpack = FRAME.unpack_from
    fs = FRAME.size
    decode = msgspec.msgpack.Decoder(list[LightRecord]).decode
    state = _State()
    done = done0
    for seg_i, (seg, data, size, is_last) in enumerate(reader.segment_views()):
        if seg_i < seg0:
            done += size
            continue
        if seg_i > seg1 or (seg_i == seg1 and off1 <= PREAMBLE.size):
            out.end = (seg_i, PREAMBLE.size)
            break
        off = off0 if seg_i == seg0 else PREAMBLE.size
        stop = off1 if seg_i == seg1 else size
        broken = False
        while off < stop and not broken:
            start = off
            payloads: list[Any] = []
            add = payloads.append
            k = 0
            while off < stop and k < _BATCH:
                if off + fs > size:
                    broken = True
                    break
                n, crc = unpack(data, off)
                end = off + fs + n
                payload = data[off + fs : end]
                if end > size or crc32(payload) != crc:
                    broken = True
                    break
                add(payload)
                off = end
                k += 1
            if k:
                try:
                    recs = decode(b"\xdd" + k.to_bytes(4, "big") + b"".join(payloads))
                except msgspec.DecodeError:
                    _undecodable(seg, data, start, k, state.expect)
                    raise  # not reached: _undecodable raises
                state.batch(out, recs, seg, data, start)
            if broken:
                reader.last_seq = state.expect - 1 if state.expect else 0
                reader.frame_error(seg, data, off, size, is_last)
                out.torn = reader.torn.describe() if reader.torn else "frame error"
            if progress is not None:
                progress(done + off)
        out.end = (seg_i, off)
        if broken or seg_i == seg1:
            break
        done += size
    out.first_seq = state.first
    out.last_seq = state.expect - 1 if state.expect else 0
    return out


def _undecodable(seg: Path, data: Any, off: int, k: int, expect: int) -> None:
    """Find which of the ``k`` frames from ``off`` does not decode, and say so."""
    decode = msgspec.msgpack.Decoder(LightRecord).decode
    fs = FRAME.size
    for _ in range(k):
        n, _crc = FRAME.unpack_from(data, off)
        try:
            decode(data[off + fs : off + fs + n])
        except msgspec.DecodeError as err:
            raise JournalCorrupt(seg, off, expect - 1, f"undecodable record ({err})") from None
        off += fs + n
    raise JournalCorrupt(seg, off, expect - 1, "undecodable batch")


class _State:
    """What the batches of one scan carry over: the next seq, the last event's receive time."""

    def __init__(self) -> None:
        self.expect = 0
        self.first = 0
        self.last_recv: int | None = None

    def batch(self, out: _Part, recs: list[Any], seg: Path, data: Any, start: int) -> None:
        Top, Trade, ERec = TopOfBookUpdated, TradePrinted, LightEventRecord
        tops: list[Any] = []
        trades: list[Any] = []
        rest: list[Any] = []
        top_add, trade_add, rest_add = tops.append, trades.append, rest.append
        last = None
        for rec in recs:
            if type(rec) is ERec:
                last = rec
                t = type(rec.event)
                if t is Top:
                    top_add(rec)
                elif t is Trade:
                    trade_add(rec)
                else:
                    rest_add(rec)
            elif type(rec) is IntentRecord:
                rest_add((rec, None if last is None else last.recv_ns))
            else:
                out.header = rec
        # seq continuity over the batch's event records, in C; the slow path names the frame
        ev = [r for r in recs if type(r) is ERec]
        if ev:
            seqs = list(map(attrgetter("seq"), ev))
            first = seqs[0]
            if (self.expect and first != self.expect) or seqs != list(
                range(first, first + len(seqs))
            ):
                self._seq_error(seqs, seg, data, start)
            if not self.expect:
                self.first = first
            self.expect = seqs[-1] + 1
        if rest and type(rest[0]) is tuple and rest[0][1] is None:
            rest[0] = (rest[0][0], self.last_recv)
        if last is not None:
            self.last_recv = last.recv_ns
        _fill(out.book_top, tops, _TOP_FIELDS)
        _fill(out.trades, trades, _TRADE_FIELDS)
        if rest:
            _rest(out, rest)

    def _seq_error(self, seqs: list[int], seg: Path, data: Any, start: int) -> None:
        expect = self.expect
        off = start
        fs = FRAME.size
        decode = msgspec.msgpack.Decoder(LightRecord).decode
        while True:  # find the frame of the first seq that does not follow
            n, _crc = FRAME.unpack_from(data, off)
            rec = decode(data[off + fs : off + fs + n])
            if type(rec) is LightEventRecord:
                if expect and rec.seq != expect:
                    raise JournalCorrupt(
                        seg, off, expect - 1, f"seq {rec.seq} follows {expect - 1}"
                    )
                expect = rec.seq + 1
            off += fs + n


def _fill(cols: IntColumns, recs: list[Any], fields: tuple[str, ...]) -> None:
    """Append the records' seq, receive time and event ``fields`` (in the columns' order)."""
    if not recs:
        return
    c = iter(cols.cols.values())
    next(c).extend(array("q", [r.seq for r in recs]))
    next(c).extend(array("q", [r.recv_ns for r in recs]))
    events = list(map(attrgetter("event"), recs))
    for col, name in zip(c, fields):
        col.extend(array("q", list(map(attrgetter(name), events))))


def _rest(out: _Part, rest: list[Any]) -> None:
    """Everything but book tops and trades: rare enough for a loop and a dispatch by type."""
    e_seq, e_recv, e_ts, e_tag, e_inst = out.other.cols.values()
    tags = EVENT_TAGS
    ledger = out.ledger.append
    for rec in rest:
        if type(rec) is tuple:
            ledger(rec)
            continue
        seq, recv, e = rec.seq, rec.recv_ns, rec.event
        t = type(e)
        e_seq.append(seq)
        e_recv.append(recv)
        e_tag.append(tags[t])
        e_ts.append(getattr(e, "ts_ns", 0))
        e_inst.append(getattr(e, "inst", -1))
        if t in _LEDGER_TYPES:
            ledger(rec)
        elif t is MarkPriceUpdated:
            m = out.marks
            for name, v in zip(
                m.cols,
                (seq, recv, e.ts_ns, e.inst, e.mark_e8, e.index_e8, e.funding_rate,
                 e.next_funding_ns),
            ):  # fmt: skip
                m[name].append(v)
        elif t is KlineUpdated:
            k = out.klines
            for name, v in zip(
                k.cols,
                (seq, recv, e.ts_ns, e.inst, e.open_ns, e.close_ns, e.open, e.high, e.low, e.close,
                 e.volume, e.quote_volume, e.trades, e.taker_buy_volume, e.closed),
            ):  # fmt: skip
                k[name].append(v)
            out.kline_intervals.append(e.interval)
