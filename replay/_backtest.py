"""The backtest driver: recorded market events + the simulated exchange -> a new journal.

Theory of operation
-------------------
The driver is the sequencer of a backtest and runs two clocks on one time axis:

* the **exchange** sees each market event at its exchange time (its receive time minus the
  feed latency, ``sim/_latency.py::FeedClock``), and our requests when they arrive there;
* **we** (the reducer) see each market event at its receive time, and the exchange's answers
  one response latency after it gave them.

So the driver keeps the market events the exchange has already seen but we have not yet
received (``pending``), and the exchange's scheduled arrivals and answers (a heap in
``ScheduledExchange``). Before the exchange sees the next market event at time T, everything
due by T happens in time order: scheduled items first, then our receipt of earlier market
events. Ties go to the scheduled item. Every event we receive is journaled, stepped, its
intents journaled and handed to the exchange.

The output journal holds every market event, every intent, every answer of the exchange and
every money event, plus a header with the whole config (the seed included) and no wall-clock
time: ``replay --verify`` works on it and a rerun gives the same bytes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

import msgspec

from engine import (
    FORMAT_VERSION,
    BookDeltaReceived,
    BookSnapshotReceived,
    ConfigError,
    Engine,
    Event,
    EventRecord,
    InstrumentLoaded,
    JournalHeader,
    KlineUpdated,
    MarkPriceUpdated,
    SessionStarted,
    TopOfBookUpdated,
    TradePrinted,
    build_state,
    load_engine_config,
    registry_hash,
)
from journal import Durability, JournalReader, JournalWriter, code_digest, code_version, read_header

from ._summary import RunStats, Summary
from ._verify import ReplayError, gc_paused
from .analytics._tail import COLUMNS_MIN_EVENTS, ColumnBuilder
from .sim import ScheduledExchange, SimConfig

__all__ = ["MARKET_TYPES", "BacktestResult", "MarketSource", "load_sim_config", "run_backtest"]


class MarketSource(Protocol):
    """Market events that are not (yet) a journal, e.g. a recorded file parsed on the fly
    (``tools.import_ws.RecordedStream``): what the journal's header and records would be."""

    name: str
    header: JournalHeader

    def records(self) -> Iterator[tuple[EventRecord, Any]]: ...


#: event types a data journal contributes; exchange answers in a live journal are dropped
#: (a counterfactual backtest replaces them with the simulated exchange's)
MARKET_TYPES = frozenset(
    {
        InstrumentLoaded,
        BookSnapshotReceived,
        BookDeltaReceived,
        TopOfBookUpdated,
        TradePrinted,
        MarkPriceUpdated,
        KlineUpdated,
    }
)


class BacktestResult(msgspec.Struct):
    out: str
    events_in: int
    events_out: int
    intents: int
    seconds: float
    summary: Summary
    exchange: dict[str, Any]
    inventory_path: list[tuple[int, int, int]]
    digest: str  # sha256 of every record produced ("" if not computed): equal iff same run
    #: the export's columns next to the journal (``analytics/_tail.py``): "written", why not
    #: ("not written: ..."), or "" when not built (no journal, too short, or not asked)
    columns: str = ""

    @property
    def events_per_s(self) -> float:
        return self.events_in / self.seconds if self.seconds else 0.0


def load_sim_config(config: dict[str, Any]) -> SimConfig:
    try:
        return msgspec.convert(config.get("backtest", {}) or {}, SimConfig, strict=False)
    except msgspec.ValidationError as e:
        text = str(e)
        if " - at `$." in text:
            msg, _, where = text.partition(" - at `$.")
            text = f"{where.rstrip('`')}: {msg}"
        raise ConfigError(f"backtest.{text}") from None


class _NullWriter:
    """Stands in for a JournalWriter when no journal is wanted (sweeps): numbers and hashes."""

    def __init__(self) -> None:
        import hashlib

        self._h = hashlib.sha256()
        enc = msgspec.msgpack.Encoder()
        self._enc_into = enc.encode_into
        # records are encoded onto the end of one buffer that is hashed every MB: the same
        # digest as hashing each record (sha256 is a stream), without a bytes object and a
        # hash call per record
        self._buf = bytearray()
        self.next_seq = 1

    def append_event(self, recv_ns: int, ev: Event) -> EventRecord:
        rec = EventRecord(self.next_seq, recv_ns, ev)
        self.next_seq += 1
        buf = self._buf
        self._enc_into(rec, buf, -1)
        if len(buf) >= 1 << 20:
            self._h.update(buf)
            buf.clear()
        return rec

    def append_intents(self, seq: int, intents: Any) -> None:
        if intents:
            from engine import IntentRecord

            self._enc_into(IntentRecord(seq, list(intents)), self._buf, -1)

    def close(self) -> None:
        self._h.update(self._buf)
        self._buf.clear()

    def digest(self) -> str:
        return self._h.hexdigest()[:16]


def run_backtest(
    config: dict[str, Any],
    data: str | Path | MarketSource,
    out: str | Path | None,
    *,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    digest: bool = False,
    columns: bool | None = None,
) -> BacktestResult:
    """Backtest ``config`` (a plain config dict) over the market events of journal ``data``
    (or of a ``MarketSource``: the same run as over the journal it would write).

    ``out=None`` writes no journal. The run's digest (sha256 of every record it produced) is
    computed when there is no journal, or when ``digest`` is set.

    ``columns``: build the export's columns next to the journal while the run goes (in a
    process that follows the journal, ``analytics/_tail.py``), so that ``export`` and ``sql``
    need not decode it: None once the run has read ``COLUMNS_MIN_EVENTS`` market events,
    True from the start, False never.
    """
    source: MarketSource | None = None
    if isinstance(data, str | Path):
        data = Path(data)
        data_header = read_header(data)
        data_name = data.name
    else:
        source = data
        data_header = source.header
        data_name = source.name
    engine_config = load_engine_config(config)
    sim_config = load_sim_config(config)
    engine = Engine(build_state(engine_config))
    instruments = list(data_header.instruments)
    sx = ScheduledExchange(sim_config, instruments)
    header = JournalHeader(
        format_version=FORMAT_VERSION,
        registry_hash=registry_hash(),
        code_version=code_version(),
        code_digest=code_digest(),
        kind="backtest",
        config=config,
        instruments=instruments,
        source={
            "data": data_name,
            "data_kind": data_header.kind,
            "data_source": data_header.source,
        },
    )
    writer: Any
    if out is None:
        writer = _NullWriter()
    else:
        writer = JournalWriter.create(
            out, header, durability=Durability("none"), overwrite=overwrite, hash_records=digest
        )
    builder: ColumnBuilder | None = None
    if out is not None and columns is not False:
        builder = ColumnBuilder(Path(out))
        if columns:
            builder.start()
    tick = progress
    if builder is not None and not builder.started:
        cb = builder

        def tick(n: int) -> None:
            if progress is not None:
                progress(n)
            if n >= COLUMNS_MIN_EVENTS and not cb.started:
                cb.start()

    markets = sx.core.markets

    def last_price(inst: int) -> int:
        m = markets.get(inst)
        return m.last_price if m is not None else 0

    stats = RunStats(engine, last_price)  # marks the position without a book (candles)
    append = writer.append_event
    append_intents = writer.append_intents
    step = engine.step
    submit = sx.submit
    observe = stats.observe
    heap = sx.heap
    answer = sx.answer
    pending: deque[tuple[int, Event]] = deque()
    intents_n = 0

    def act(t: int, seq: int, out_intents: Any) -> None:
        nonlocal intents_n
        append_intents(seq, out_intents)
        intents_n += len(out_intents)
        for it in out_intents:
            submit(t, it)

    def deliver(t: int, ev: Event) -> None:
        """An answer of the exchange (or a timer) reaches us."""
        rec = append(t, ev)
        out_intents = step(rec)
        observe(t, ev)
        if out_intents:
            act(t, rec.seq, out_intents)

    def deliver_market(t: int, ev: Event) -> None:
        """A market event reaches us (no run statistics to update but the equity sample)."""
        rec = append(t, ev)
        out_intents = step(rec)
        if t >= stats.next_sample:
            stats.sample(t)
        if out_intents:
            act(t, rec.seq, out_intents)

    def advance(until: int) -> None:
        """Everything due at or before ``until``, in time order (scheduled items win ties)."""
        while True:
            th = heap[0][0] if heap else None
            tl = pending[0][0] if pending else None
            if th is not None and th <= until and (tl is None or th <= tl):
                t, ev = sx.pop()
                if ev is not None:
                    deliver(t, ev)
            elif tl is not None and tl <= until:
                t, ev = pending.popleft()
                deliver_market(t, ev)
            else:
                return

    started = time.perf_counter()
    feed = sx.feed
    zero_feed = not feed.recorded and feed.constant_ns == 0
    exchange_time = feed.exchange_time
    # market event type -> the exchange's handler; doubles as the MARKET_TYPES filter
    on_market = sx.core.market_handlers()
    assert on_market.keys() == MARKET_TYPES
    handler_of = on_market.get
    events_in = 0
    last_t = 0
    records: Iterator[tuple[EventRecord, Any]]
    if source is None:
        records = JournalReader(data).events_with_payload()  # one layer fewer than events()
    else:
        records = source.records()
    failed = True
    try:
        with gc_paused():
            # the first market event starts the session
            for rec, _payload in records:
                if type(rec.event) in on_market:
                    deliver(rec.recv_ns, SessionStarted(1, "backtest"))
                    break
            else:
                raise ReplayError(f"{data_name} holds no market events to backtest on")
            records = chain(((rec, _payload),), records)
            if zero_feed:
                # The hot loop of most backtests: the exchange and we see each market event
                # at the same instant (no lookahead). ``deliver_market`` is inlined here, and
                # everything the loop touches is a local: a call or an attribute lookup per
                # event costs about as much as the simulator's work on most events.
                for rec, _payload in records:
                    ev = rec.event
                    apply = handler_of(type(ev))
                    if apply is None:
                        continue
                    t = rec.recv_ns
                    if heap and heap[0][0] <= t:
                        advance(t)
                    answers = apply(t, ev)
                    if answers:
                        answer(t, answers)
                    r = append(t, ev)
                    out_intents = step(r)
                    if t >= stats.next_sample:
                        stats.sample(t)
                    if out_intents:
                        act(t, r.seq, out_intents)
                    last_t = t
                    events_in += 1
                    if tick is not None and not events_in & 0x3FFF:
                        tick(events_in)
            else:
                for rec, _payload in records:
                    ev = rec.event
                    apply = handler_of(type(ev))
                    if apply is None:
                        continue
                    t = rec.recv_ns
                    t_ex = exchange_time(t, getattr(ev, "ts_ns", 0))
                    if heap or pending:
                        advance(t_ex)
                    answers = apply(t_ex, ev)
                    if answers:
                        answer(t_ex, answers)
                    pending.append((t, ev))
                    last_t = t
                    events_in += 1
                    if tick is not None and not events_in & 0x3FFF:
                        tick(events_in)
            # what is due by the end of the data still happens; later answers never arrive
            advance(last_t)
        failed = False
    finally:
        try:
            writer.close()
        except BaseException:
            failed = True
            raise
        finally:
            built = ""
            if builder is not None and failed:
                builder.abort()
            elif builder is not None:
                built = builder.finish()  # the backtest's time includes the wait
    seconds = time.perf_counter() - started
    run_digest = writer.digest()
    return BacktestResult(
        out=str(out) if out is not None else "",
        events_in=events_in,
        events_out=writer.next_seq - 1,
        intents=intents_n,
        seconds=seconds,
        summary=stats.summary(),
        exchange=sx.core.describe(),
        inventory_path=stats.inventory_path,
        digest=run_digest,
        columns=built,
    )
