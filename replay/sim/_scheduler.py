"""The simulated exchange as seen from our clock: the matching model plus latencies.

``submit(t, intent)``: an intent we emit at local time ``t`` reaches the exchange ``entry``
later; the answers the exchange gives at that moment reach us ``response`` later (one draw per
answer batch, so the answers to one request keep their order). Market-driven answers (fills,
funding) are stamped with the exchange time of the market event and also take ``response`` to
reach us. Timers are local: ``TimerFired`` at the requested time, no latency.

Everything waits in one heap keyed by (time, insertion order): deterministic.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable

from engine import (
    CancelTimer,
    Event,
    InstrumentLoaded,
    Intent,
    RaiseAlert,
    RecordDecision,
    ScheduleTimer,
    TimerFired,
)

from ._config import SimConfig
from ._exchange import SimExchange
from ._latency import FeedClock, LatencyModel

__all__ = ["ScheduledExchange"]

_ARRIVE = 0  # an intent reaches the exchange
_DELIVER = 1  # an event reaches us


class ScheduledExchange:
    def __init__(self, config: SimConfig, instruments: Iterable[InstrumentLoaded]) -> None:
        self.config = config
        self.core = SimExchange(config, instruments)
        self.rng = random.Random(config.seed)
        self.latency = LatencyModel(config.latency, self.rng)
        self.feed = FeedClock(config.latency.feed)
        self.heap: list[tuple[int, int, int, object]] = []
        self._n = 0
        self._timers: dict[int, int] = {}

    def _push(self, t: int, kind: int, item: object) -> None:
        self._n += 1
        heapq.heappush(self.heap, (t, self._n, kind, item))

    def submit(self, t: int, intent: Intent) -> None:
        kind = type(intent)
        if kind is ScheduleTimer:
            self._timers[intent.timer_id] = intent.at_ns
            self._push(max(intent.at_ns, t), _DELIVER, TimerFired(intent.timer_id, intent.at_ns))
        elif kind is CancelTimer:
            self._timers.pop(intent.timer_id, None)
        elif kind is not RaiseAlert and kind is not RecordDecision:
            self._push(t + self.latency.entry(), _ARRIVE, intent)

    def on_market(self, t_ex: int, ev: Event) -> None:
        """The exchange sees a market event at exchange time ``t_ex``."""
        out = self.core.apply_market(t_ex, ev)
        if out:
            self.answer(t_ex, out)

    def answer(self, t_ex: int, events: list[Event]) -> None:
        """Events the exchange produced at ``t_ex`` reach us one response latency later."""
        at = t_ex + self.latency.response()
        for e in events:
            self._push(at, _DELIVER, e)

    def next_time(self) -> int | None:
        return self.heap[0][0] if self.heap else None

    def pop(self) -> tuple[int, Event | None]:
        """Run the next scheduled thing; returns (time, event to deliver to us, or None)."""
        t, _, kind, item = heapq.heappop(self.heap)
        if kind == _ARRIVE:
            out = self.core.submit(t, item)  # type: ignore[arg-type]
            if out:
                at = t + self.latency.response()
                for e in out:
                    self._push(at, _DELIVER, e)
            return t, None
        if type(item) is TimerFired:
            if self._timers.pop(item.timer_id, None) is None:
                return t, None  # cancelled
        return t, item  # type: ignore[return-value]
