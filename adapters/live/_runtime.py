"""The live runtime: one trio nursery, one ordered channel, one consumer that journals and steps.

Theory of operation
-------------------
Every source — market streams, the user stream, REST answers, timers, the operator — sends
``(event, t0)`` into **one** memory channel. A single consumer task takes them in order and,
for each: stamps the next sequence number and the receive time (the only clock read that
reaches the journal), appends the event to the journal, calls ``Engine.step``, appends the
intents, **writes the journal buffer to the OS** and only then hands the intents on. So
everything the exchange is ever asked to do is in the journal file before the request
leaves: a ``kill -9`` at any instant loses nothing that was acted upon (an fsync, by group
commit every ``interval`` ms, covers power loss as well).

Intents go to the venue (``_venue.py``: the real exchange over REST/WS-API, or the paper
venue's simulated matching) as separate tasks, so a slow request never blocks the sequencer.
Timers are a heap here: ``ScheduleTimer`` arms one, and when it is due a ``TimerFired`` event
goes through the channel like everything else.

Start-up is recovery (ref DESIGN.md "Recovery"): if the journal exists, every event in it is
replayed through a fresh engine (its intents are not executed again), pending timers are
re-armed from the journaled intents, a torn tail is cut; then a new ``SessionStarted``, the
venue's catch-up (every order the engine believes open is looked up by its client id; fills
missed while down come back from ``userTrades``) and an ``AccountSnapshotReceived``.

Shutdown (SIGINT/SIGTERM, ``request_stop``) is structured: market data stops (so the strategy
stops quoting), new orders are refused locally (as journaled rejections), open orders are
cancelled if ``cancel_on_exit``, the dead-man switch is disarmed, the channel is drained and
the journal closed (synced).
"""

from __future__ import annotations

import gc
import heapq
import math
import os
import signal
import statistics
import time
from array import array
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

import msgspec
import trio

from engine import (
    FORMAT_VERSION,
    AmendOrder,
    CancelTimer,
    Engine,
    Event,
    EventRecord,
    InstrumentLoaded,
    Intent,
    IntentRecord,
    JournalHeader,
    OperatorCommanded,
    PlaceOrder,
    RaiseAlert,
    RecordDecision,
    ScheduleTimer,
    SessionStarted,
    TimerFired,
    build_state,
    load_engine_config,
    registry_hash,
)
from journal import (
    Durability,
    JournalReader,
    JournalWriter,
    Syncer,
    SyncError,
    code_digest,
    code_version,
)
from journal._format import segment_paths

from ._config import LiveConfig

__all__ = ["Runtime", "RuntimeReport", "Venue"]

_STOP = object()
#: the consumer yields after working this long without a break (ns)
_SLICE_NS = 1_000_000
#: young objects allocated since the last collection before the idle consumer collects them
_GC_YOUNG = 10_000
#: a full collection (of what was allocated since start-up) at most this often (s), when idle
_GC_FULL_S = 60.0


class Venue(Protocol):
    """Where intents are carried out and where account truth comes from."""

    name: str

    async def instruments(self, symbols: list[str]) -> list[InstrumentLoaded]: ...

    async def start(self, nursery: trio.Nursery, rt: Runtime) -> None: ...

    async def execute(self, intent: Intent, t0_ns: int) -> None: ...

    def begin(self, intent: Intent, t0_ns: int) -> Coroutine[Any, Any, None] | None:
        """Start the intent in the caller's step if the venue can (a WebSocket-API request
        written to the socket, an order joining a ``batchOrders`` request); the rest as a
        coroutine. None: the venue ``execute``s it in a task of its own."""
        ...

    async def reconcile(self, rt: Runtime) -> None: ...

    async def cancel_all(self, symbol: str) -> None: ...

    async def dead_man(self, symbol: str, countdown_ms: int) -> None: ...

    def stop_market(self) -> None: ...

    def replayed(self, rec: EventRecord, intents: list[Intent]) -> None:
        """Recovery: one journaled step (its event and every intent it decided)."""
        ...

    def describe(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


def _gc_start() -> bool:
    """After start-up: collect, freeze what is left (never scanned again) and stop automatic
    collections; the consumer collects young objects when it is idle (ref/perf-notes.md: an
    automatic full collection in the middle of a burst stalls the loop for milliseconds)."""
    was = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    return was


def _gc_stop(was: bool) -> None:
    gc.unfreeze()
    if was:
        gc.enable()


class RuntimeReport(msgspec.Struct):
    journal: str
    mode: str
    session: int
    resumed: bool
    replayed_events: int
    recovery_s: float
    events: int
    intents: int
    alerts: list[str]
    tick_to_order_ns: list[int]
    stop_reason: str
    venue: dict[str, Any]

    def latency_summary(self) -> dict[str, float]:
        lat = sorted(self.tick_to_order_ns)
        if not lat:
            return {}
        return {
            "n": len(lat),
            "p50_ms": statistics.median(lat) / 1e6,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6,
        }


class Runtime:
    def __init__(
        self,
        *,
        config: dict[str, Any],
        journal: str | Path,
        mode: str,
        venue: Venue,
        live: LiveConfig,
        symbols: list[str],
        status: Callable[[Runtime], None] | None = None,
        log: Callable[[str], None] | None = None,
        install_signals: bool = True,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.journal = Path(journal)
        self.mode = mode
        self.venue = venue
        self.live = live
        self.symbols = symbols
        self.status = status
        self.log = log or (lambda text: None)
        self.install_signals = install_signals
        self.clock = clock
        self.durability = Durability.parse(live.durability)
        self.engine: Engine | None = None
        self.writer: JournalWriter | None = None
        self.stopping = False
        self.stop_reason = ""
        self._stop = trio.Event()
        self._send, self._recv = trio.open_memory_channel[tuple[Any, int]](math.inf)
        self._timers: list[tuple[int, int]] = []  # (at_ns, timer_id) heap
        self._armed: dict[int, int] = {}  # timer_id -> at_ns
        self._timer_wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._drained = trio.Event()
        self.connections: dict[str, bool] = {}
        self.alerts: list[str] = []
        #: orders and amends decided during shutdown and never sent
        self.held: list[Intent] = []
        #: requests handed to the venue and not finished yet
        self.in_flight = 0
        self.latencies: list[int] = []
        #: bench hooks (off when None): frame -> consumer lag (ns) of market events, and the
        #: perf_counter_ns of each event's append until its group commit is durable
        #: (``array``: millions of samples the garbage collector need not look at)
        self.queue_lag: array[int] | None = None
        self._append_ns: array[int] | None = None
        self.durable_ns: array[int] = array("q")
        #: how long each of those fdatasyncs took (the disk's share)
        self.fdatasync_ns: array[int] = array("q")
        self.events = 0
        self.intents = 0
        self._gc_full_ns = 0
        #: the journal's sync process (``_sync_journal``), the last seq asked of it, and the
        #: asks not answered yet: (last seq written, append times of the events it covers)
        self._syncer: Syncer | None = None
        self._sync_asked = 0
        self._unsynced: deque[tuple[int, array[int] | None]] = deque()
        self.replayed_events = 0
        self.recovery_s = 0.0
        self.resumed = False
        self.session = 0
        self.inst_by_symbol: dict[str, int] = {}
        self.instruments: dict[int, InstrumentLoaded] = {}

    # -- the sources' door ---------------------------------------------------------------

    async def emit(self, ev: Event, t0_ns: int = 0) -> None:
        """Hand one event to the sequencer (never blocks: the channel is unbounded)."""
        self._send.send_nowait((ev, t0_ns))

    def emit_nowait(self, ev: Event, t0_ns: int = 0) -> None:
        self._send.send_nowait((ev, t0_ns))

    async def set_connection(self, stream: str, up: bool, reason: str) -> None:
        from engine import ConnectionChanged, ConnectionState

        if self.connections.get(stream) == up:
            return
        self.connections[stream] = up
        self.log(f"{stream} stream {'up' if up else 'down'}{': ' + reason if reason else ''}")
        await self.emit(
            ConnectionChanged(stream, ConnectionState.UP if up else ConnectionState.DOWN, reason)
        )

    def nursery_start(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start a background task in the runtime's nursery (e.g. resolving an order)."""
        assert self._nursery is not None
        self._nursery.start_soon(fn, *args)

    @property
    def healthy(self) -> bool:
        return bool(self.connections) and all(self.connections.values())

    def track_latency(self) -> None:
        """Collect the bench figures (frame -> consumer lag, append -> durable)."""
        self.queue_lag = array("q")
        self._append_ns = array("q")

    def request_stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        self._stop.set()

    # -- recovery ------------------------------------------------------------------------

    def _recover(self, instruments: list[InstrumentLoaded]) -> list[Event]:
        """Open (or create) the journal and rebuild the engine; the events to send first."""
        started = time.perf_counter()
        # The writer never writes on its own (mode "none"): an event and the intents of its
        # step must reach the file together, or a kill -9 between them would leave an event
        # whose decisions were never journaled (nor executed). This runtime writes after each
        # step and syncs on its own schedule (``_sync_journal``) as ``live.durability`` says.
        self.durability = Durability.parse(self.live.durability)
        durability = Durability("none")
        first: list[Event] = []
        exists = self.journal.is_dir() and bool(segment_paths(self.journal))
        if exists:
            reader = JournalReader(self.journal)
            header = reader.header
            if header.kind not in ("live", "paper", "testnet", "demo"):
                raise RuntimeError(f"{self.journal} is a {header.kind} journal, not a live one")
            self.config = header.config  # the journal's own config: same reducer as before
            engine = Engine(build_state(load_engine_config(header.config)))
            replayed = 0
            step = engine.step
            pending_timers: dict[int, int] = {}
            last: EventRecord | None = None
            hook = self.venue.replayed
            for rec in reader.records():
                if type(rec) is EventRecord:
                    if last is not None:
                        hook(last, [])
                    step(rec)
                    replayed += 1
                    last = rec
                    ev = rec.event
                    if type(ev) is TimerFired:
                        pending_timers.pop(ev.timer_id, None)
                elif type(rec) is IntentRecord:
                    for it in rec.intents:
                        if type(it) is ScheduleTimer:
                            pending_timers[it.timer_id] = it.at_ns
                        elif type(it) is CancelTimer:
                            pending_timers.pop(it.timer_id, None)
                    if last is not None and last.seq == rec.seq:
                        hook(last, rec.intents)
                        last = None
            if last is not None:
                hook(last, [])
            self.writer, torn = JournalWriter.open_append(self.journal, durability=durability)
            if torn is not None:
                self.log(f"journal: cut a torn tail of {torn.cut_bytes} bytes ({torn.describe()})")
            for tid, at in pending_timers.items():
                if tid in engine.state.timers:
                    self._arm(tid, at)
            self.engine = engine
            self.replayed_events = replayed
            self.resumed = True
            known = {i.symbol: i for i in (x.spec for x in engine.state.instruments.values())}
            for spec in instruments:
                old = known.get(spec.symbol)
                if old is None:
                    spec = msgspec.structs.replace(spec, inst=len(known))
                    known[spec.symbol] = spec
                    first.append(spec)
                elif old != msgspec.structs.replace(spec, inst=old.inst):
                    first.append(msgspec.structs.replace(spec, inst=old.inst))  # filters changed
            for spec in known.values():
                self.inst_by_symbol[spec.symbol] = spec.inst
                self.instruments[spec.inst] = spec
        else:
            header = JournalHeader(
                format_version=FORMAT_VERSION,
                registry_hash=registry_hash(),
                code_version=code_version(),
                code_digest=code_digest(),
                kind=self.mode,
                config=self.config,
                instruments=instruments,
                source={"venue": self.venue.name},
            )
            self.writer = JournalWriter.create(self.journal, header, durability=durability)
            self.engine = Engine(build_state(load_engine_config(self.config)))
            first.extend(instruments)
            for spec in instruments:
                self.inst_by_symbol[spec.symbol] = spec.inst
                self.instruments[spec.inst] = spec
        self.session = self.engine.state.session + 1
        first.append(SessionStarted(self.session, self.mode))
        self.recovery_s = time.perf_counter() - started
        return first

    # -- the consumer --------------------------------------------------------------------

    async def _consume(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        engine, writer = self.engine, self.writer
        assert engine is not None
        assert writer is not None
        append, append_intents, step = writer.append_event, writer.append_intents, engine.step
        flush = writer.flush
        every = self.durability.mode == "every"
        clock = self.clock
        recv = self._recv
        receive_nowait = recv.receive_nowait
        dispatch = self._dispatch
        perf = time.perf_counter_ns
        gc_count, gc_collect = gc.get_count, gc.collect
        hand_over = self._hand_over
        # a venue that follows the journal (paper: its simulated exchange) sees each step
        # in order; its answers join the channel like any source's
        follow = self.venue.after_step if getattr(self.venue, "follows_steps", False) else None
        send_nowait = self._send.send_nowait
        slice_ns = _SLICE_NS
        run = 0
        young = 0
        task_status.started()
        # Batched reads: everything already in the channel is taken without a scheduler round
        # per event (``receive`` yields on every call); a step with intents is flushed and
        # its requests handed on at once, then the loop yields so they run before the backlog.
        # A backlog is worked off in slices of ~1 ms, so the rest of the loop (the stream
        # readers, the journal's sync, requests in flight) never waits longer than that.
        # Garbage is collected here, when the channel is empty (see ``_gc_start``).
        since = perf()
        while True:
            try:
                item = receive_nowait()
            except trio.WouldBlock:
                hand_over()  # idle: what was appended goes to the OS and to the sync process
                if gc_count()[0] > _GC_YOUNG:
                    young += 1
                    if young % 100 == 0 and perf() - self._gc_full_ns > _GC_FULL_S * 1e9:
                        gc_collect()
                        gc.freeze()  # survivors are long-lived: never scanned again
                        self._gc_full_ns = perf()
                    else:
                        gc_collect(1 if young % 10 == 0 else 0)
                try:
                    item = await recv.receive()
                except trio.EndOfChannel:
                    return
                since = perf()
            except trio.EndOfChannel:
                return
            ev, t0 = item
            if ev is _STOP:
                self._drained.set()
                continue
            rec = append(clock(), ev)
            self.events += 1
            lag, pending = self.queue_lag, self._append_ns
            if pending is not None:
                pending.append(perf())
                if lag is not None and t0:
                    lag.append(pending[-1] - t0)
            intents = step(rec)
            if follow is not None:
                for answer in follow(rec, intents):
                    send_nowait((answer, 0))
            if intents:
                append_intents(rec.seq, intents)
                flush()  # in the OS before anything leaves: kill -9 loses nothing acted upon
                if every:
                    writer.sync()
                self.intents += len(intents)
                if dispatch(intents, t0):
                    run = 0
                    await trio.lowlevel.checkpoint()  # let the requests go out first
                    since = perf()
                    continue
            run += 1
            if run >= 16:
                run = 0
                now = perf()
                if now - since >= slice_ns:
                    await trio.lowlevel.checkpoint()
                    since = perf()

    def _dispatch(self, intents: Any, t0: int) -> bool:
        """Hand the intents on; True if a request task was started."""
        nursery = self._nursery
        assert nursery is not None
        begin = self.venue.begin
        started = False
        for it in intents:
            kind = type(it)
            if kind is ScheduleTimer:
                self._arm(it.timer_id, it.at_ns)
            elif kind is CancelTimer:
                self._armed.pop(it.timer_id, None)
            elif kind is RaiseAlert or kind is RecordDecision:
                text = f"{it.code}: {it.message}"
                self.alerts.append(text)
                self.log(("alert " if kind is RaiseAlert else "decision ") + text)
            elif self.stopping and (kind is PlaceOrder or kind is AmendOrder):
                # not sent. Answering now would only make the strategy try again; the next
                # session's recovery finds it never reached the exchange and says so
                self.held.append(it)
            else:
                # a WebSocket-API request goes on the socket right here, in this step (a
                # batched order joins its batch)
                begun = begin(it, t0)
                if begun is not None:
                    self.in_flight += 1
                    nursery.start_soon(self._answered, begun)
                else:
                    nursery.start_soon(self._execute, it, t0)
                started = True
        return started

    async def _answered(self, begun: Coroutine[Any, Any, None]) -> None:
        """The rest of a request ``venue.begin`` wrote: its answer."""
        try:
            await begun
        finally:
            self.in_flight -= 1

    async def _execute(self, intent: Intent, t0: int) -> None:
        self.in_flight += 1
        try:
            await self.venue.execute(intent, t0)
        finally:
            self.in_flight -= 1

    # -- timers, journal sync, dead-man switch, reconciliation ------------------------------

    def _arm(self, timer_id: int, at_ns: int) -> None:
        self._armed[timer_id] = at_ns
        heapq.heappush(self._timers, (at_ns, timer_id))
        self._timer_wakeup.set()

    async def _run_timers(self) -> None:
        while True:
            while self._timers and self._armed.get(self._timers[0][1]) != self._timers[0][0]:
                heapq.heappop(self._timers)  # cancelled or re-armed
            if not self._timers:
                self._timer_wakeup = trio.Event()
                await self._timer_wakeup.wait()
                continue
            at, tid = self._timers[0]
            delay = (at - self.clock()) / 1e9
            if delay > 0:
                self._timer_wakeup = trio.Event()
                with trio.move_on_after(delay):
                    await self._timer_wakeup.wait()
                continue
            heapq.heappop(self._timers)
            del self._armed[tid]
            await self.emit(TimerFired(tid, at))

    async def _sync_journal(self) -> None:
        """Group commit: the consumer writes whole steps to the OS, a child process syncs them.

        An inline fdatasync stalls the event loop for its 0.1-0.5 ms (tens of ms on a busy
        disk, ref/perf-notes.md). A sync thread is no better: its fdatasync returns without
        the GIL and then waits for a busy loop to hand the GIL over (up to the 5 ms switch
        interval), which pushed append->durable p99 to 4 ms at 20k events/s. The journal's
        ``Syncer`` child has its own interpreter: it syncs the segment by name the moment it
        is asked and answers with the time the sync returned, so a durable time is the disk's,
        not the loop's. The consumer asks whenever it goes idle with something new written
        (``_hand_over``: a short pipe write), and this task every ``interval`` for a consumer
        that never goes idle; the child starts a sync at most once per ``interval``, waiting
        for that in its own process, so the wait does not grow with the loop's load. This
        task also reads the answers.
        """
        writer = self.writer
        assert writer is not None
        mode = self.durability.mode
        if mode == "none":
            return
        interval = self.durability.interval_ms / 1000 if mode == "interval" else 0.002
        self._sync_asked = writer.durable_seq
        syncer = self._syncer = Syncer(min_gap_ns=int(interval * 1e9))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sync_answers, syncer)
                while True:
                    await trio.sleep(interval)
                    self._hand_over()
        finally:
            self._syncer = None
            syncer.close()  # the child finishes a sync in flight; the writer's close syncs the rest

    async def _sync_answers(self, syncer: Syncer) -> None:
        writer, unsynced = self.writer, self._unsynced
        assert writer is not None
        while True:
            await trio.lowlevel.wait_readable(syncer.answer_fd)
            try:
                answers = syncer.poll()
            except SyncError as e:
                # the disk refused a sync: nothing later can be called durable, so stop
                # trading (the shutdown's own close says whether the disk is back)
                self._syncer = None
                self.log(f"journal: {e}")
                self.alerts.append(f"journal_sync_failed: {e}")
                self.request_stop(f"journal sync failed: {e}")
                return
            for seq, done, took in answers:
                writer.durable_seq = max(writer.durable_seq, seq)
                while unsynced and unsynced[0][0] <= seq:
                    appended = unsynced.popleft()[1]
                    if appended:
                        # perf_counter_ns and the child's monotonic_ns are one clock on Linux
                        self.durable_ns.extend([done - t for t in appended])
                if self._append_ns is not None:
                    self.fdatasync_ns.append(took)

    def _hand_over(self) -> None:
        """Write what was appended to the OS and ask the sync process to make it durable
        (it spaces the syncs themselves: each is a disk flush)."""
        writer, syncer = self.writer, self._syncer
        if writer is None:
            return
        writer.flush()
        if syncer is None:
            return
        upto = writer.next_seq - 1
        if upto <= self._sync_asked:
            return
        try:
            syncer.request(upto, os.fsencode(writer.segment_path))
        except SyncError as e:
            self._syncer = None
            self.log(f"journal: {e}")
            self.request_stop(f"journal sync failed: {e}")
            return
        self._sync_asked = upto
        pending = self._append_ns
        if pending is not None:
            self._append_ns = array("q")
        self._unsynced.append((upto, pending))

    async def _dead_man(self) -> None:
        if not self.live.dead_man_s:
            return
        ms = int(self.live.dead_man_s * 1000)
        while not self.stopping:
            if self.healthy:
                for s in self.symbols:
                    try:
                        await self.venue.dead_man(s, ms)
                    except Exception as e:  # a failed heartbeat: the countdown still runs
                        self.log(f"dead-man refresh failed: {type(e).__name__}: {e}")
            await trio.sleep(self.live.dead_man_refresh_s)

    async def _reconcile_periodically(self) -> None:
        if not self.live.reconcile_s:
            return
        while not self.stopping:
            await trio.sleep(self.live.reconcile_s)
            if self.stopping:
                return
            try:
                await self.venue.reconcile(self)
            except Exception as e:
                self.log(f"reconciliation failed: {type(e).__name__}: {e}")

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for sig in signals:
                self.request_stop(signal.Signals(sig).name)
                return

    async def _status_loop(self) -> None:
        if self.status is None:
            return
        while True:
            self.status(self)
            await trio.sleep(1.0)

    # -- the whole run -------------------------------------------------------------------

    async def run(
        self,
        *,
        seconds: float | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> RuntimeReport:
        instruments = await self.venue.instruments(self.symbols)
        first = self._recover(instruments)
        gc_was: bool | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self._consume)
                for ev in first:
                    await self.emit(ev)
                nursery.start_soon(self._run_timers)
                nursery.start_soon(self._sync_journal)
                if self.install_signals:
                    nursery.start_soon(self._signals)
                await self.venue.start(nursery, self)
                gc_was = _gc_start()
                self._gc_full_ns = time.perf_counter_ns()
                nursery.start_soon(self._dead_man)
                nursery.start_soon(self._reconcile_periodically)
                nursery.start_soon(self._status_loop)
                task_status.started()
                if seconds is not None:
                    with trio.move_on_after(seconds):
                        await self._stop.wait()
                    self.request_stop(f"ran {seconds:g} s")
                else:
                    await self._stop.wait()
                await self._shutdown()
                nursery.cancel_scope.cancel()
        finally:
            if gc_was is not None:
                _gc_stop(gc_was)
            if self.writer is not None:
                self.writer.close()
            await self.venue.aclose()
        return RuntimeReport(
            journal=str(self.journal),
            mode=self.mode,
            session=self.session,
            resumed=self.resumed,
            replayed_events=self.replayed_events,
            recovery_s=self.recovery_s,
            events=self.events,
            intents=self.intents,
            alerts=self.alerts,
            tick_to_order_ns=self.latencies,
            stop_reason=self.stop_reason,
            venue=self.venue.describe(),
        )

    async def _shutdown(self) -> None:
        """Stop quoting, let every request in flight finish, cancel until nothing is open.

        Why each wait (a clean stop must leave no order on the exchange):

        * the consumer may have handed orders to ``_execute`` tasks that have not run yet:
          two checkpoints let them start (and count themselves in ``in_flight``);
        * an order whose request is still in flight lands after a cancel-all sent now, so
          every request must finish first. An unknown outcome is resolved inside its task,
          and that ends at the latest once the server's clock is past the request's
          ``timestamp + recvWindow`` — after which the exchange refuses it (-1021), so no
          straggler can appear once ``in_flight`` is 0. The bound is generous for that;
        * cancel-all is repeated (at least twice, at most four times) until the engine
          holds no open order of its own; a cancel-all refused by the rate budget (429 /
          418) waits for the budget instead of giving up.
        """
        self.log(f"stopping ({self.stop_reason})")
        self.stopping = True
        self.venue.stop_market()
        await self.emit(
            OperatorCommanded(
                "shutdown",
                {
                    "reason": self.stop_reason,
                    "cancel": "true" if self.live.cancel_on_exit else "false",
                },
            )
        )
        engine = self.engine
        assert engine is not None
        settle_s = 2 * self.live.timeout_s + self.live.recv_window_ms / 1000 + 10
        with trio.move_on_after(settle_s + 60):
            await trio.lowlevel.checkpoint()
            await trio.lowlevel.checkpoint()
            with trio.move_on_after(settle_s) as waited:
                while self.in_flight:  # noqa: ASYNC110 - polls a counter, no event for it
                    await trio.sleep(0.01)
            if waited.cancelled_caught:
                self.log(f"stopping: {self.in_flight} requests still unanswered")

            def still_open() -> bool:
                held = {it.client_id for it in self.held}
                return any(cid not in held for cid in engine.state.open_orders)

            for attempt in range(4 if self.live.cancel_on_exit else 0):
                if attempt >= 2 and not still_open() and not self.in_flight:
                    break
                for s in self.symbols:
                    await self._cancel_all_patiently(s)
                # wait for the cancellations to come back and be journaled
                with trio.move_on_after(5):
                    while still_open() or self.in_flight:  # noqa: ASYNC110 - engine state
                        await trio.sleep(0.05)
            if self.live.dead_man_s:
                for s in self.symbols:
                    try:
                        await self.venue.dead_man(s, 0)
                    except Exception as e:
                        self.log(f"dead-man disarm {s} failed: {type(e).__name__}: {e}")
        with trio.move_on_after(5):
            self._send.send_nowait((_STOP, 0))
            await self._drained.wait()

    async def _cancel_all_patiently(self, symbol: str) -> None:
        """One cancel-all; if the rate budget refuses it, wait for the budget (bounded)."""
        for _ in range(5):
            try:
                await self.venue.cancel_all(symbol)
                return
            except Exception as e:
                self.log(f"cancel-all {symbol} failed: {type(e).__name__}: {e}")
                until = getattr(e, "until", None)  # Throttled: blocked until (monotonic s)
                if until is None:
                    return
                await trio.sleep(min(30.0, max(0.2, until - time.monotonic())))
