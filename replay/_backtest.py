"""The backtest driver: recorded market events + a simulated exchange -> a new journal.

Theory of operation
-------------------
The driver is the sequencer of a backtest. It walks the market events of a data journal in
order and, before each one, delivers every event the simulated exchange has due by then
(acks, rejects, fills, timer firings). Each delivered event is journaled, stepped through the
reducer, and the intents it produced are journaled and handed to the exchange. Ties go to
the exchange's events first, then the market event; within the exchange, by the order it
scheduled them. The exchange sees each market event just before the reducer does.

The output journal holds everything (market events, exchange answers, intents) and a header
with the whole config and no wall-clock time, so ``replay --verify`` works on it and a rerun
gives the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from engine import (
    FORMAT_VERSION,
    BookDeltaReceived,
    BookSnapshotReceived,
    Engine,
    Event,
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

from ._sim_minimal import MinimalExchange, MinimalExchangeConfig
from ._summary import Summary, summarize
from ._verify import ReplayError, gc_paused

__all__ = ["BacktestResult", "run_backtest"]

#: event types a data journal contributes; exchange answers in a live journal are dropped
#: (a counterfactual backtest replaces them with the simulated exchange's)
_MARKET_TYPES = frozenset(
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

    @property
    def events_per_s(self) -> float:
        return self.events_in / self.seconds if self.seconds else 0.0


def load_exchange_config(config: dict[str, Any]) -> MinimalExchangeConfig:
    from engine import ConfigError

    try:
        return msgspec.convert(
            config.get("backtest", {}) or {}, MinimalExchangeConfig, strict=False
        )
    except msgspec.ValidationError as e:
        raise ConfigError(f"backtest: {e}") from None


def run_backtest(
    config: dict[str, Any],
    data: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Backtest ``config`` (a plain config dict) over the market events of journal ``data``."""
    data = Path(data)
    data_header = read_header(data)
    engine_config = load_engine_config(config)
    exchange_config = load_exchange_config(config)
    engine = Engine(build_state(engine_config))
    instruments = list(data_header.instruments)
    exchange = MinimalExchange(exchange_config, instruments)
    header = JournalHeader(
        format_version=FORMAT_VERSION,
        registry_hash=registry_hash(),
        code_version=code_version(),
        code_digest=code_digest(),
        kind="backtest",
        config=config,
        instruments=instruments,
        source={
            "data": data.name,
            "data_kind": data_header.kind,
            "data_source": data_header.source,
        },
    )
    writer = JournalWriter.create(out, header, durability=Durability("none"), overwrite=overwrite)
    append = writer.append_event
    append_intents = writer.append_intents
    step = engine.step
    submit = exchange.submit
    on_market = exchange.on_market
    pop_due = exchange.pop_due
    events_in = 0
    intents_n = 0

    def deliver(t: int, ev: Event) -> None:
        nonlocal intents_n
        rec = append(t, ev)
        out_intents = step(rec)
        if out_intents:
            append_intents(rec.seq, out_intents)
            intents_n += len(out_intents)
            for it in out_intents:
                submit(t, it)

    started = time.perf_counter()
    reader = JournalReader(data)
    session_started = False
    last_t = 0
    try:
        with gc_paused():
            for rec in reader.events():
                ev = rec.event
                if type(ev) not in _MARKET_TYPES:
                    continue
                t = rec.recv_ns
                if not session_started:
                    deliver(t, SessionStarted(1, "backtest"))
                    session_started = True
                if exchange._queue or exchange._actions:
                    for te, xev in pop_due(t):
                        deliver(te, xev)
                on_market(t, ev)
                deliver(t, ev)
                last_t = t
                events_in += 1
                if progress is not None and not events_in & 0x3FFF:
                    progress(events_in)
            # what the exchange had due by the end of the data still happens
            for te, xev in pop_due(last_t):
                deliver(te, xev)
    finally:
        writer.close()
    if not session_started:
        raise ReplayError(f"{data} holds no market events to backtest on")
    seconds = time.perf_counter() - started
    instruments_final: list[InstrumentLoaded] = [i.spec for i in engine.state.instruments.values()]
    return BacktestResult(
        out=str(out),
        events_in=events_in,
        events_out=writer.next_seq - 1,
        intents=intents_n,
        seconds=seconds,
        summary=summarize(engine, instruments_final),
    )
