"""What the market has done so far, kept for the history endpoints (pure, no I/O).

``MarketHistory`` is fed every market event the server plays (already stamped in server
time) and answers ``/fapi/v1/klines``, ``aggTrades``, ``trades``, ``ticker/24hr`` and
``fundingRate``. History starts when the server starts: a client that preloads candles right
after start-up gets only the candles played so far (the one in progress included, last, as
Binance does: closed candles are those whose close time has passed).

* trades: the last ``MAX_TRADES`` public prints per symbol;
* candles: one-minute candles built from the prints (every interval up to 1d is aggregated
  from them, so ``1m`` and ``1h`` always agree), with the empty minutes filled at the last
  close, as Binance does; a market source that carries recorded candles (``KlineUpdated``)
  is served from those for their interval instead;
* funding: one row per funding time that passed, with the rate that settled and the mark
  price, by the simulator's rule (``replay.sim``: settled by the first mark price at or
  after ``nextFundingTime``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from engine import Instrument, KlineUpdated, Side, TradePrinted
from engine._events import KLINE_INTERVAL_S

__all__ = ["INTERVALS_MS", "Candle", "FundingRow", "MarketHistory", "TradeRow"]

_MS = 1_000_000
_MINUTE_MS = 60_000

#: Binance's kline intervals served (the project's one table; 3d and 1w have their own
#: calendar anchors, not served)
INTERVALS_MS = {k: s * 1000 for k, s in KLINE_INTERVAL_S.items() if s <= 86_400}

MAX_TRADES = 10_000
MAX_MINUTES = 60 * 24 * 30  # a month of one-minute candles per symbol
MAX_FUNDING = 5_000


@dataclass(slots=True)
class TradeRow:
    trade_id: int
    time_ms: int
    price: int
    qty: int
    buyer_maker: bool


@dataclass(slots=True)
class Candle:
    open_ms: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0  # lots
    quote: int = 0  # minor units
    trades: int = 0
    taker_volume: int = 0
    taker_quote: int = 0
    first_id: int = -1
    last_id: int = -1

    def absorb(self, other: Candle) -> None:
        """Extend this candle by ``other`` (the next one in time)."""
        if other.trades:
            if not self.trades:
                self.open = self.high = self.low = other.open
                self.first_id = other.first_id
            self.high = max(self.high, other.high)
            self.low = min(self.low, other.low)
            self.close = other.close
            self.last_id = other.last_id
        self.volume += other.volume
        self.quote += other.quote
        self.trades += other.trades
        self.taker_volume += other.taker_volume
        self.taker_quote += other.taker_quote


@dataclass(slots=True)
class FundingRow:
    time_ms: int
    rate: int  # RATE_SCALE
    mark_e8: int


@dataclass
class _Symbol:
    trades: deque[TradeRow] = field(default_factory=lambda: deque(maxlen=MAX_TRADES))
    minutes: dict[int, Candle] = field(default_factory=dict)  # open ms -> candle, in order
    recorded: dict[str, dict[int, KlineUpdated]] = field(default_factory=dict)
    funding: list[FundingRow] = field(default_factory=list)


class MarketHistory:
    def __init__(self) -> None:
        self._by_inst: dict[int, _Symbol] = {}

    def _sym(self, inst: int) -> _Symbol:
        s = self._by_inst.get(inst)
        if s is None:
            s = self._by_inst[inst] = _Symbol()
        return s

    # -- feeding ---------------------------------------------------------------------------

    def on_trade(self, ins: Instrument, ev: TradePrinted) -> None:
        s = self._sym(ev.inst)
        ms = ev.ts_ns // _MS
        s.trades.append(TradeRow(ev.trade_id, ms, ev.price, ev.qty, ev.taker_side is Side.SELL))
        start = ms - ms % _MINUTE_MS
        c = s.minutes.get(start)
        if c is None:
            if s.minutes:
                last = next(reversed(s.minutes))
                if start < last:  # out of order (never in a well-formed feed): fold it in
                    start, c = last, s.minutes[last]
            if c is None:
                c = s.minutes[start] = Candle(start, ev.price, ev.price, ev.price, ev.price)
                if len(s.minutes) > MAX_MINUTES:
                    del s.minutes[next(iter(s.minutes))]
        if not c.trades:
            c.open = c.high = c.low = ev.price
            c.first_id = ev.trade_id
        c.high = max(c.high, ev.price)
        c.low = min(c.low, ev.price)
        c.close = ev.price
        c.last_id = ev.trade_id
        c.trades += 1
        notional = ins.notional(ev.price, ev.qty)
        c.volume += ev.qty
        c.quote += notional
        if ev.taker_side is Side.BUY:
            c.taker_volume += ev.qty
            c.taker_quote += notional

    def on_kline(self, ev: KlineUpdated) -> None:
        """A recorded candle (the last update of a candle wins)."""
        if ev.interval in INTERVALS_MS:
            self._sym(ev.inst).recorded.setdefault(ev.interval, {})[ev.open_ns // _MS] = ev

    def on_funding(self, inst: int, funding_ns: int, rate: int, mark_e8: int) -> None:
        rows = self._sym(inst).funding
        ms = funding_ns // _MS
        if rows and rows[-1].time_ms >= ms:
            return
        rows.append(FundingRow(ms, rate, mark_e8))
        if len(rows) > MAX_FUNDING:
            del rows[0]

    # -- queries ---------------------------------------------------------------------------

    def trades(self, inst: int) -> deque[TradeRow]:
        return self._sym(inst).trades

    def funding(self, inst: int) -> list[FundingRow]:
        return self._sym(inst).funding

    def recorded_klines(self, inst: int, interval: str) -> list[KlineUpdated]:
        got = self._sym(inst).recorded.get(interval)
        return [got[k] for k in sorted(got)] if got else []

    def candles(self, inst: int, interval: str, now_ms: int) -> list[Candle]:
        """Every candle of ``interval`` from the first print to the one holding ``now_ms``
        (empty intervals filled at the last close), oldest first."""
        span = INTERVALS_MS[interval]
        minutes = self._sym(inst).minutes
        if not minutes:
            return []
        out: list[Candle] = []
        for m in minutes.values():
            start = m.open_ms - m.open_ms % span
            if out and out[-1].open_ms == start:
                out[-1].absorb(m)
                continue
            if out:
                prev = out[-1].close
                t = out[-1].open_ms + span
                while t < start:
                    out.append(Candle(t, prev, prev, prev, prev))
                    t += span
            c = Candle(start, m.open, m.open, m.open, m.open)
            c.absorb(m)
            out.append(c)
        last = out[-1]
        t = last.open_ms + span
        end = now_ms - now_ms % span
        while t <= end:
            out.append(Candle(t, last.close, last.close, last.close, last.close))
            t += span
        return out

    def window(self, inst: int, start_ms: int, end_ms: int) -> Candle | None:
        """The one-minute candles with ``start_ms <= open < end_ms`` summed (for the 24 h
        ticker); ``None`` when nothing traded there."""
        total: Candle | None = None
        for m in self._sym(inst).minutes.values():
            if m.open_ms < start_ms or m.open_ms >= end_ms or not m.trades:
                continue
            if total is None:
                total = Candle(m.open_ms, m.open, m.open, m.open, m.open)
            total.absorb(m)
        return total
