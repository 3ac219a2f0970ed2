"""The live runtime without a network: a synthetic feed, the simulated exchange as venue.

Checks the sequencer (one ordered channel, seq + journal before step), the executor path,
timers, structured shutdown, recovery from the journal (replay, new session, torn tail) and
that a live journal verifies bit for bit.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio

from adapters.binance import builtin_instrument
from adapters.live import LiveConfig, PaperVenue, Runtime
from adapters.live._config import Endpoints
from engine import (
    EventRecord,
    InstrumentLoaded,
    IntentRecord,
    OrderAccepted,
    OrderFilled,
    OrderStatus,
    PlaceOrder,
    SessionStarted,
)
from journal import JournalReader
from replay import load_sim_config, verify
from replay._synthetic import SyntheticMarket, SyntheticMarketConfig
from tests.conftest import simple_config

LOCAL = Endpoints(rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")


class FeedVenue(PaperVenue):
    """Paper venue whose market data is a seeded synthetic feed instead of WebSockets."""

    name = "test-feed"

    def __init__(self, live: LiveConfig, sim_config: Any, events: int, seed: int) -> None:
        super().__init__(LOCAL, live, sim_config)
        self.n = events
        self.seed = seed

    async def instruments(self, symbols: list[str]) -> list[InstrumentLoaded]:
        return [builtin_instrument(i, s) for i, s in enumerate(symbols)]

    async def _start_market(self, nursery: trio.Nursery, rt: Runtime, emit: Any) -> None:
        spec = rt.instruments[0]
        self.market = SyntheticMarket(SyntheticMarketConfig(seed=self.seed), spec)

        async def feed() -> None:
            await rt.set_connection("market", True, "")
            for i, (_, ev) in enumerate(self.market.events(3600)):
                if i >= self.n:
                    break
                if i == 0:
                    continue  # the engine asks for its snapshot itself
                await emit(ev, time.perf_counter_ns())
                if i % 8 == 0:
                    await trio.sleep(0.001)  # a market, not a burst: answers interleave
            # let the last answers arrive, then stop
            await trio.sleep(0.2)
            rt.request_stop("feed done")

        nursery.start_soon(feed)

    async def _book_snapshot(self, rt: Runtime, r: Any) -> list[Any]:
        return [self.market.snapshot(rt.clock())]


def run_once(
    journal: Path,
    events: int,
    seed: int = 7,
    *,
    durability: str = "interval:2",
    venue_class: type[FeedVenue] = FeedVenue,
    track: bool = False,
) -> tuple[Runtime, Any]:
    cfg = simple_config()
    cfg["live"] = {"dead_man_s": 0, "reconcile_s": 0, "durability": durability}
    live = LiveConfig(dead_man_s=0, reconcile_s=0, durability=durability)
    venue = venue_class(live, load_sim_config(cfg), events, seed)
    rt = Runtime(
        config=cfg,
        journal=journal,
        mode="paper",
        venue=venue,
        live=live,
        symbols=["BTCUSDT"],
        install_signals=False,
    )
    if track:
        rt.track_latency()

    async def main() -> Any:
        with trio.fail_after(120):
            return await rt.run()

    return rt, trio.run(main)


def journal_events(journal: Path) -> list[Any]:
    return [r.event for r in JournalReader(journal).events()]


def test_live_journal_verifies_and_recovers(tmp_path):
    j = tmp_path / "paper"
    rt, report = run_once(j, 4000)
    assert report.stop_reason == "feed done" and report.session == 1 and not report.resumed
    evs = journal_events(j)
    assert isinstance(evs[0], InstrumentLoaded) and evs[1] == SessionStarted(1, "paper")
    placed = sum(
        1 for r in JournalReader(j).records() if type(r).__name__ == "IntentRecord"
        for i in r.intents if isinstance(i, PlaceOrder)
    )  # fmt: skip
    assert placed > 10, "the strategy quoted"
    assert len(report.tick_to_order_ns) > 0
    # cancel_on_exit left nothing open but what was decided during shutdown and never sent
    assert set(rt.engine.state.open_orders) <= {i.client_id for i in rt.held}
    assert verify(j).identical
    first_events = len(evs)

    # restart on the same journal: replay, new session, the venue rebuilt from the journal
    rt2, report2 = run_once(j, 3000, seed=8)
    assert report2.resumed and report2.replayed_events == first_events and report2.session == 2
    evs2 = journal_events(j)
    assert evs2[first_events] == SessionStarted(2, "paper")
    assert verify(j).identical
    fills = [e for e in evs2 if isinstance(e, OrderFilled)]
    assert len({(f.client_id, f.trade_id) for f in fills}) == len(fills), "no duplicate fills"


def test_torn_tail_is_cut_on_restart(tmp_path):
    j = tmp_path / "paper"
    run_once(j, 1500)
    seg = sorted(j.glob("segment-*.rmj"))[-1]
    with open(seg, "ab") as f:
        f.write(b"\x40\x00\x00\x00garbage")  # a record cut short by kill -9
    _, report = run_once(j, 500)
    assert report.resumed and any(p.name.startswith(seg.name + ".cut-") for p in j.iterdir())
    assert verify(j).identical


def test_live_journal_is_made_durable_by_the_sync_process(tmp_path):
    # the consumer writes each step to the OS and asks the journal's sync process; its answers
    # (the time each fdatasync returned) say which appends are durable and when
    rt, report = run_once(tmp_path / "paper", 3000, durability="interval:1", track=True)
    assert report.stop_reason == "feed done"
    assert len(rt.fdatasync_ns) > 10, "synced in groups while running"
    assert 0.5 * rt.events < len(rt.durable_ns) <= rt.events
    assert min(rt.durable_ns) > 0, "durable after the append, on one clock"
    assert verify(tmp_path / "paper").identical


class SyncKillingVenue(FeedVenue):
    """Kills the journal's sync process a little way into the session."""

    async def _start_market(self, nursery: trio.Nursery, rt: Runtime, emit: Any) -> None:
        await super()._start_market(nursery, rt, emit)

        async def kill() -> None:
            await trio.sleep(0.3)  # the feed sends ~8 events per ms: well into the session
            assert rt._syncer is not None and rt.events > 100
            rt._syncer._proc.kill()

        nursery.start_soon(kill)


def test_a_dead_sync_process_stops_trading(tmp_path):
    # nothing appended after that can be called durable: the runtime says so and shuts down
    # in order (the journal's own close syncs inline, so nothing is lost)
    j = tmp_path / "paper"
    rt, report = run_once(j, 100_000, durability="interval:1", venue_class=SyncKillingVenue)
    assert report.stop_reason.startswith("journal sync failed"), report.stop_reason
    assert any(a.startswith("journal_sync_failed") for a in report.alerts)
    assert rt.events < 100_000
    assert verify(j).identical


def _prefix(src: Path, dst: Path, keep: Any) -> None:
    """Copy the journal ``src`` to ``dst`` up to and including the first record ``keep``
    accepts: what a ``kill -9`` right after writing that record leaves."""
    from journal import JournalWriter

    reader = JournalReader(src)
    with JournalWriter.create(dst, reader.header) as w:
        for rec in reader.records():
            if type(rec) is EventRecord:
                w.append_record(rec)
            elif type(rec) is IntentRecord:
                w.append_intents(rec.seq, rec.intents)
            if keep(rec):
                return
    raise AssertionError("no such record")


def test_paper_answers_a_kill_left_unjournaled_come_out_again(tmp_path):
    # Killed right after the step that placed an order was journaled, before the simulated
    # exchange's answer was: the restart's replay drives the simulated exchange with the same
    # steps, finds that answer missing from the journal and sends it, so the order does not
    # hang as pending forever and the two sides agree.
    full = tmp_path / "full"
    run_once(full, 1500)
    placed = {}

    def first_place(rec: Any) -> bool:
        if type(rec) is IntentRecord:
            for i in rec.intents:
                if type(i) is PlaceOrder:
                    placed["cid"] = i.client_id
                    return True
        return False

    cut = tmp_path / "cut"
    _prefix(full, cut, first_place)
    cid = placed["cid"]
    assert not any(type(e) is OrderAccepted and e.client_id == cid for e in journal_events(cut)), (
        "the cut journal lacks the answer"
    )

    rt, report = run_once(cut, 1500, seed=8)
    assert report.resumed and rt.venue._diverged == 0
    evs = journal_events(cut)
    session2 = evs.index(SessionStarted(2, "paper"))
    acks = [i for i, e in enumerate(evs) if type(e) is OrderAccepted and e.client_id == cid]
    assert len(acks) == 1 and acks[0] > session2, "answered once, after the restart"
    order = rt.engine.state.order(cid)
    assert order is not None and order.status is not OrderStatus.PENDING_NEW
    assert verify(cut).identical


def test_a_paper_restart_rebuilds_the_simulated_exchange_exactly(tmp_path):
    # the simulated exchange follows the journal, so a clean restart owes nothing
    j = tmp_path / "paper"
    run_once(j, 1500)
    rt, report = run_once(j, 800, seed=8)
    assert report.resumed and rt.venue._diverged == 0
    assert "never journaled" not in " ".join(report.alerts)
    assert verify(j).identical
    # the restarted feed numbers its updates from the start again: a new session forgets the
    # old book and top (their update ids), so it quotes at once instead of dropping every
    # diff and ticker as older than the previous session's
    second: list[Any] = []
    for rec in JournalReader(j).records():
        if type(rec) is EventRecord and rec.event == SessionStarted(2, "paper"):
            second = [rec]
        elif second and type(rec) is IntentRecord:
            second += [i for i in rec.intents if type(i) is PlaceOrder]
    assert len(second) > 10, "session 2 quoted"
