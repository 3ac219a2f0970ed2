"""One pass over a journal -> Arrow tables: the export's hot loop.

Theory of operation
-------------------
Export speed is decode speed: the loop walks the frames itself (as ``JournalReader.events``
does), checks each CRC and sequence number, decodes with the *light* record types
(``_light.py``: depth diffs are decoded without their level lists) and appends to
``array('q')`` columns, which become Arrow arrays without a copy. The market events (book
tops, trades: ~90% of a journal) take an inlined branch; everything about our own orders and
money goes to the ``Ledger``, which is plain Python because it is a few percent of the rows.

Decimals are built at the end, vectorised: ticks/lots/minor units times a per-instrument
factor, reinterpreted as DECIMAL(18, d) (``_columns.decimal_column``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
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
    KlineUpdated,
    MarkPriceUpdated,
    TopOfBookUpdated,
    TradePrinted,
)
from journal import JournalCorrupt, JournalReader
from journal._format import FRAME, PREAMBLE

from ._columns import IntColumns, int_column
from ._ledger import ORDER_EVENT_TYPES, Ledger
from ._light import EVENT_NAMES, EVENT_TAGS, LightEventRecord, LightRecord

__all__ = ["Collected", "collect"]

_PROGRESS_EVERY = 1 << 16  # frames between progress callbacks


class Collected:
    """What one pass found: the raw columns, the ledger, the instruments, the journal's extent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # events other than book tops and trades; the ``events`` table is the three merged
        # (so the two most frequent kinds cost no extra appends in the loop)
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
        self.ledger = Ledger(self._top_of)
        self.instruments: dict[int, Instrument] = {}
        self.header: Any = None
        self.last_seq = 0
        self.torn: str | None = None

    def _top_of(self, inst: int) -> tuple[int, int] | None:
        """The latest bookTicker of ``inst`` seen so far (searching back from the end: the
        last row is almost always it, so the hot loop keeps no per-event state for this)."""
        top = self.book_top
        insts, bids, asks = top["inst"], top["bid_ticks"], top["ask_ticks"]
        for i in range(len(insts) - 1, max(-1, len(insts) - 10_000), -1):
            if insts[i] == inst:
                return bids[i], asks[i]
        return None

    def __len__(self) -> int:
        """Events read."""
        return len(self.other) + len(self.book_top) + len(self.trades)

    def events_table(self) -> pa.Table:
        """Every event's seq, receive time, exchange time, type and instrument, in seq order."""
        parts = []
        for cols, tag in (
            (self.book_top, EVENT_TAGS[TopOfBookUpdated]),
            (self.trades, EVENT_TAGS[TradePrinted]),
            (self.other, None),
        ):
            n = len(cols)
            tags = int_column(cols["tag"]) if tag is None else pa.repeat(tag, n)
            parts.append(
                pa.table(
                    {
                        "seq": int_column(cols["seq"]),
                        "recv_ns": int_column(cols["recv_ns"]),
                        "ts_ns": int_column(cols["ts_ns"]),
                        "tag": tags.cast(pa.int16()),
                        "inst": int_column(cols["inst"]),
                    }
                )
            )
        t = pa.concat_tables(parts).sort_by("seq")
        names = [EVENT_NAMES.get(i, f"tag{i}") for i in range(max(EVENT_NAMES) + 1)]
        kind = pa.DictionaryArray.from_arrays(
            t["tag"].combine_chunks(), pa.array(names, pa.string())
        )
        return t.drop_columns(["tag"]).append_column("type", kind)


def collect(path: Path, progress: Callable[[int], None] | None = None) -> Collected:
    """Read the journal at ``path`` once; ``progress`` receives bytes read so far."""
    reader = JournalReader(path)
    out = Collected(path)
    out.header = reader.header
    for spec in reader.header.instruments:
        _load_instrument(out, spec)
    decode = msgspec.msgpack.Decoder(LightRecord).decode
    crc32 = zlib.crc32
    unpack = FRAME.unpack_from
    fs = FRAME.size
    ot = out.other
    e_seq, e_recv, e_ts, e_tag, e_inst = ot.cols.values()
    tb = out.book_top
    t_seq, t_recv, t_ts, t_inst, t_uid, t_bid, t_bq, t_ask, t_aq = tb.cols.values()
    tr = out.trades
    r_seq, r_recv, r_ts, r_inst, r_id, r_px, r_qty, r_side = tr.cols.values()
    tags = EVENT_TAGS
    Top, Trade, ERec = TopOfBookUpdated, TradePrinted, LightEventRecord
    expect = 0
    last_recv = 0
    done_bytes = 0
    frames = 0
    for seg, data, size, is_last in reader.segment_views():
        off = PREAMBLE.size
        while off < size:
            if off + fs > size:
                reader.frame_error(seg, data, off, size, is_last)
                break
            n, crc = unpack(data, off)
            end = off + fs + n
            payload = data[off + fs : end]
            if end > size or crc32(payload) != crc:
                reader.frame_error(seg, data, off, size, is_last)
                break
            try:
                rec = decode(payload)
            except msgspec.DecodeError as err:
                raise JournalCorrupt(seg, off, expect - 1, f"undecodable record ({err})") from None
            if type(rec) is ERec:
                seq = rec.seq
                if seq != expect and expect:
                    raise JournalCorrupt(seg, off, expect - 1, f"seq {seq} follows {expect - 1}")
                expect = seq + 1
                last_recv = recv = rec.recv_ns
                e: Any = rec.event
                t = type(e)
                if t is Top:
                    t_seq.append(seq)
                    t_recv.append(recv)
                    t_ts.append(e.ts_ns)
                    t_inst.append(e.inst)
                    t_uid.append(e.update_id)
                    t_bid.append(e.bid)
                    t_bq.append(e.bid_qty)
                    t_ask.append(e.ask)
                    t_aq.append(e.ask_qty)
                elif t is Trade:
                    r_seq.append(seq)
                    r_recv.append(recv)
                    r_ts.append(e.ts_ns)
                    r_inst.append(e.inst)
                    r_id.append(e.trade_id)
                    r_px.append(e.price)
                    r_qty.append(e.qty)
                    r_side.append(e.taker_side)
                else:
                    e_seq.append(seq)
                    e_recv.append(recv)
                    e_tag.append(tags[t])
                    e_ts.append(getattr(e, "ts_ns", 0))
                    e_inst.append(getattr(e, "inst", -1))
                    _other_event(out, seq, recv, e, t)
            elif type(rec) is IntentRecord:
                out.ledger.on_intents(rec.seq, last_recv, rec.intents)
            off = end
            frames += 1
            if progress is not None and not frames % _PROGRESS_EVERY:
                progress(done_bytes + off)
        done_bytes += size
    out.last_seq = expect - 1 if expect else 0
    out.torn = reader.torn.describe() if reader.torn else None
    if progress is not None:
        progress(done_bytes)
    return out


def _load_instrument(out: Collected, spec: InstrumentLoaded) -> None:
    ins = Instrument(spec)
    out.instruments[spec.inst] = ins
    out.ledger.instruments[spec.inst] = ins


def _other_event(out: Collected, seq: int, recv: int, e: Any, t: type) -> None:
    """Everything but book tops and trades: rare enough for a dispatch by type."""
    if t in ORDER_EVENT_TYPES:
        out.ledger.on_order_event(seq, recv, e)
    elif t is MarkPriceUpdated:
        m = out.marks
        for name, v in zip(
            m.cols,
            (seq, recv, e.ts_ns, e.inst, e.mark_e8, e.index_e8, e.funding_rate, e.next_funding_ns),
        ):
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
    elif t is FundingSettled:
        out.ledger.on_funding(seq, recv, e)
    elif t is AccountUpdated:
        out.ledger.on_account(seq, recv, e)
    elif t is InstrumentLoaded:
        _load_instrument(out, e)
