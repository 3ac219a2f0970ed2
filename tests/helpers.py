"""Builders for tests (TestEvents-style): engines, records, instruments."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from adapters.binance import builtin_instrument
from engine import Engine, EngineState, Event, EventRecord, InstrumentLoaded, Intent
from engine.strategies import Strategy


class Feeder:
    """An engine plus a sequencer: ``feed(event)`` stamps and steps it, returns the intents."""

    def __init__(self, engine: Engine | None = None, *, t0: int = 1_000_000_000) -> None:
        self.engine = engine or Engine(EngineState(Strategy()))
        self.seq = 0
        self.t = t0
        self.intents: list[tuple[int, Intent]] = []

    @property
    def state(self) -> EngineState:
        return self.engine.state

    def feed(self, ev: Event, *, at: int | None = None, dt: int = 1_000_000) -> Sequence[Intent]:
        self.seq += 1
        self.t = at if at is not None else self.t + dt
        out = self.engine.step(EventRecord(self.seq, self.t, ev))
        self.intents += [(self.seq, i) for i in out]
        return out

    def feed_all(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.feed(ev)


def btc(inst: int = 0) -> InstrumentLoaded:
    return builtin_instrument(inst, "BTCUSDT")
