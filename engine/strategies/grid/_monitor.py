"""The volume-spike breaker: OpenSQT's active risk monitor (ref/opensqt.md §4.2), pure.

A symbol *panics* when its current candle closes below the average close of the previous
``average_window`` closed candles while its volume exceeds ``volume_multiplier`` times their
average volume. The breaker trips when every monitored symbol panics at once (as OpenSQT),
and clears when ``recovery_threshold`` symbols show a normal closed candle (close above the
average, volume below the multiple).

Fixed against OpenSQT (§7.18):

* it **fails closed**: a monitored symbol without enough closed candles, or whose candles
  stopped arriving for two intervals, blocks new entries (``blocked_reason``) instead of
  silently counting as "not panicking";
* only candles flagged closed enter the averages; the forming candle is used only as the
  "current" one in the trip test;
* ``recovery_threshold`` is always clamped to [1, number of symbols], so it can recover with
  one or two symbols.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from engine._events import KlineUpdated

from ._config import INTERVAL_NS, RiskControlConfig

__all__ = ["VolumeMonitor"]


class _Candles:
    __slots__ = ("closed", "forming", "last_ns")

    def __init__(self, window: int) -> None:
        self.closed: deque[KlineUpdated] = deque(maxlen=window + 1)
        self.forming: KlineUpdated | None = None
        self.last_ns = -1  # event time of the last candle message


class VolumeMonitor:
    def __init__(self, config: RiskControlConfig) -> None:
        self.config = config
        self.window = config.average_window
        self.multiplier = Decimal(config.volume_multiplier)
        self.interval_ns = INTERVAL_NS[config.interval]
        n = len(config.monitor_symbols)
        self.recovery_needed = max(1, min(config.recovery_threshold, n))
        self.candles: dict[str, _Candles] = {
            s: _Candles(self.window) for s in config.monitor_symbols
        }
        self.triggered = False

    def watches(self, symbol: str, interval: str) -> bool:
        return interval == self.config.interval and symbol in self.candles

    def on_kline(self, symbol: str, ev: KlineUpdated, now_ns: int) -> str | None:
        """Record a candle; returns "trip" or "recover" when the state changes, else None."""
        c = self.candles[symbol]
        c.last_ns = now_ns
        if ev.closed:
            if c.closed and c.closed[-1].open_ns == ev.open_ns:
                c.closed[-1] = ev  # a repeated close message
            elif not c.closed or ev.open_ns > c.closed[-1].open_ns:
                c.closed.append(ev)
            if c.forming is not None and c.forming.open_ns <= ev.open_ns:
                c.forming = None
        elif not c.closed or ev.open_ns > c.closed[-1].open_ns:
            c.forming = ev
        if not self.triggered:
            if all(self._panics(x) for x in self.candles.values()):
                self.triggered = True
                return "trip"
        elif ev.closed:
            recovered = sum(1 for x in self.candles.values() if self._recovered(x))
            if recovered >= self.recovery_needed:
                self.triggered = False
                return "recover"
        return None

    def blocked_reason(self, now_ns: int) -> str:
        """Why entries must wait: "" when the monitor has fresh, sufficient data."""
        for symbol, c in self.candles.items():
            if len(c.closed) < self.window + 1 and (
                c.forming is None or len(c.closed) < self.window
            ):
                return f"risk monitor warming up: {symbol} needs {self.window} closed {self.config.interval} candles"
            if now_ns - c.last_ns > 2 * self.interval_ns:
                return f"risk monitor data stale: no {symbol} {self.config.interval} candle for two intervals"
        return ""

    def _averages(self, candles: list[KlineUpdated]) -> tuple[Decimal, Decimal]:
        n = len(candles)
        return (
            Decimal(sum(k.close for k in candles)) / n,
            Decimal(sum(k.volume for k in candles)) / n,
        )

    def _panics(self, c: _Candles) -> bool:
        closed = list(c.closed)
        if c.forming is not None:
            current, before = c.forming, closed[-self.window :]
        elif closed:
            current, before = closed[-1], closed[-self.window - 1 : -1]
        else:
            return False
        if len(before) < self.window:
            return False
        avg_close, avg_volume = self._averages(before)
        return current.close < avg_close and current.volume > avg_volume * self.multiplier

    def _recovered(self, c: _Candles) -> bool:
        closed = list(c.closed)
        if len(closed) < self.window + 1:
            return False
        avg_close, avg_volume = self._averages(closed[-self.window - 1 : -1])
        last = closed[-1]
        return last.close > avg_close and last.volume < avg_volume * self.multiplier

    def describe(self) -> dict[str, object]:
        return {
            "triggered": self.triggered,
            "recovery_needed": self.recovery_needed,
            "closed_candles": {s: len(c.closed) for s, c in self.candles.items()},
        }
