"""Latency models: order entry, response, and market-data feed.

All draws come from one ``random.Random(seed)`` owned by the simulator, consumed in event
order, so a backtest is reproducible from its config (the seed is in the journal header).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from engine import EventRecord, IntentRecord, OrderAccepted, OrderRejected, PlaceOrder

from ._config import LatencyConfig

__all__ = ["FeedClock", "LatencyModel", "measure_round_trips"]

_MS = 1_000_000


class LatencyModel:
    """Draws entry and response latencies (ns)."""

    def __init__(self, config: LatencyConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.entry_ns = int(config.entry_ms * _MS)
        self.response_ns = int(config.response_ms * _MS)
        self.samples: list[int] = []
        if config.model == "measured":
            self.samples = measure_round_trips(Path(config.journal))
            if not self.samples:
                raise ValueError(
                    f"latency.journal {config.journal}: no order round trips found in it"
                )

    def entry(self) -> int:
        model = self.config.model
        if model == "constant":
            return self.entry_ns
        if model == "lognormal":
            return int(self.entry_ns * math.exp(self.rng.gauss(0.0, self.config.sigma)))
        return self.rng.choice(self.samples) // 2

    def response(self) -> int:
        model = self.config.model
        if model == "constant":
            return self.response_ns
        if model == "lognormal":
            return int(self.response_ns * math.exp(self.rng.gauss(0.0, self.config.sigma)))
        return self.rng.choice(self.samples) - self.rng.choice(self.samples) // 2


def measure_round_trips(journal: Path) -> list[int]:
    """Order round trips (ns) in a journal: from the step that placed an order to its answer.

    The placing step's receive time is when the intent left; the ack's (or reject's) receive
    time is when the answer came back. Both are read on the same (local) clock, so the
    exchange's clock offset does not matter. Half of each is used as entry, half as response.
    """
    from journal import JournalReader

    sent: dict[str, int] = {}
    trips: list[int] = []
    last_recv = 0
    for rec in JournalReader(journal).records():
        if isinstance(rec, EventRecord):
            last_recv = rec.recv_ns
            ev = rec.event
            if isinstance(ev, OrderAccepted | OrderRejected):
                t0 = sent.pop(ev.client_id, None)
                if t0 is not None and rec.recv_ns >= t0:
                    trips.append(rec.recv_ns - t0)
        elif isinstance(rec, IntentRecord):
            for it in rec.intents:
                if isinstance(it, PlaceOrder):
                    sent[it.client_id] = last_recv
    return trips


class FeedClock:
    """When the exchange saw a market event we received at ``recv_ns``.

    A constant feed latency L gives ``recv_ns - L``. ``recorded`` uses the event's own
    exchange timestamp: ``ts_ns + offset``, where ``offset`` is the recorder's clock offset
    estimated as the smallest ``recv_ns - ts_ns`` over the first 5,000 events (so the fastest
    message is taken to have had no latency at all; an optimistic but consistent choice).
    Exchange times are kept monotone and never after the receive time.
    """

    WARMUP = 5_000

    def __init__(self, feed: float | str) -> None:
        self.recorded = feed == "recorded"
        self.constant_ns = 0 if self.recorded else int(float(feed) * _MS)
        self.offset: int | None = None
        self._seen = 0
        self._last = 0

    def exchange_time(self, recv_ns: int, ts_ns: int) -> int:
        if not self.recorded or not ts_ns:
            t = recv_ns - self.constant_ns
        else:
            lag = recv_ns - ts_ns
            if self._seen < self.WARMUP:
                self._seen += 1
                if self.offset is None or lag < self.offset:
                    self.offset = lag
            assert self.offset is not None
            t = min(recv_ns, ts_ns + self.offset)
        if t < self._last:
            t = self._last
        self._last = t
        return t
