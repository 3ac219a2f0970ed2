"""A seeded synthetic Binance USDⓈ-M market: snapshot, depth diffs, bookTicker, trades, mark.

Used by ``replaymm demo`` and the local exchange when no recording is given. Same seed, same
events. The default parameters are statistics measured on the real BTCUSDT session of
2024-08-08 23:54-00:00 UTC (hftbacktest's recording, 345 s):

=============================  ============================
bookTicker updates             192 /s
trades                         62 /s, in bursts of ~4 per print
depth diffs                    19 /s, ~68 levels each, 20% deletions
spread                         1 tick 96% of the time
best-level quantity            median 2.68 BTC
trade size                     lognormal, median 0.016 BTC (log-mean 2.91, log-sd 1.87 in lots)
buy-initiated trades           45%
mid change over 1 s            sd 84 ticks (8.4 USDT)
top-50 level quantity          median 0.022 BTC, mean 0.61 BTC; gaps of 1-2 ticks mostly
=============================  ============================

The model is simple on purpose: a book of levels around a mid that drifts as a random walk;
trades hit the touch and eat it (price impact when a level empties); quotes flicker at the
touch; changes are batched into diffs every ~50 ms with proper ``U``/``u``/``pu`` chaining, and
every change of the best price or size is published as a bookTicker with its update id.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import msgspec

from engine import (
    PRICE_E8_SCALE,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    Instrument,
    InstrumentLoaded,
    MarkPriceUpdated,
    Side,
    TopOfBookUpdated,
    TradePrinted,
)

__all__ = ["SyntheticMarket", "SyntheticMarketConfig"]

_S = 1_000_000_000


class SyntheticMarketConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    seed: int = 7
    start_price: str = "61800.0"
    start_ns: int = 1_723_161_256_000_000_000  # 2024-08-08 23:54:16 UTC, like the recording
    trade_bursts_per_s: float = 15.5  # 62 trades/s in bursts of ~4
    trades_per_burst: float = 4.0
    quote_flickers_per_s: float = 150.0
    drift_moves_per_s: float = 12.0
    drift_sd_ticks: float = 70.0  # with trade impact: sd of the mid over 1 s ~84 ticks
    diff_interval_ms: float = 50.0
    top_qty_median: float = 2.68  # base units
    level_qty_median: float = 0.022
    level_qty_log_sd: float = 2.2
    trade_qty_log_mean: float = 2.91  # in lots
    trade_qty_log_sd: float = 1.87
    buy_fraction: float = 0.45
    levels: int = 400  # levels kept per side
    feed_latency_ms: float = 1.0
    funding_rate: str = "0.0001"


class SyntheticMarket:
    def __init__(self, config: SyntheticMarketConfig, spec: InstrumentLoaded) -> None:
        self.cfg = config
        self.spec = spec
        self.ins = Instrument(spec)
        self.rng = random.Random(config.seed)
        self.update_id = 1_000_000
        self.trade_id = 1
        mid = self.ins.price_scale.to_units(config.start_price)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        step = self.ins.qty_scale
        self._lot = 1 / float(step.to_decimal(1))  # lots per base unit
        self._fill_side(self.bids, mid, -1)
        self._fill_side(self.asks, mid + 1, +1)
        self._changes_b: dict[int, int] = {}
        self._changes_a: dict[int, int] = {}
        self._diff_first = self.update_id + 1
        self._diff_prev = self.update_id
        self._last_top: tuple[int, int, int, int] = (0, 0, 0, 0)

    # -- book shape ----------------------------------------------------------------------

    def _level_qty(self, near_top: bool) -> int:
        median = self.cfg.top_qty_median if near_top else self.cfg.level_qty_median
        q = math.exp(
            math.log(median * self._lot)
            + self.rng.gauss(0, self.cfg.level_qty_log_sd * (0.5 if near_top else 1))
        )
        return max(1, int(q))

    def _fill_side(self, side: dict[int, int], best: int, direction: int) -> None:
        p = best
        for i in range(self.cfg.levels):
            side[p] = self._level_qty(i == 0)
            p += direction * (1 if self.rng.random() < 0.6 else self.rng.randint(2, 4))

    def _set(self, is_bid: bool, price: int, qty: int) -> None:
        book = self.bids if is_bid else self.asks
        if qty:
            book[price] = qty
        else:
            book.pop(price, None)
        (self._changes_b if is_bid else self._changes_a)[price] = qty
        self.update_id += 1

    def best(self) -> tuple[int, int]:
        return max(self.bids), min(self.asks)

    # -- events --------------------------------------------------------------------------

    def snapshot(self, ts: int) -> BookSnapshotReceived:
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        return BookSnapshotReceived(
            self.spec.inst,
            ts,
            self.update_id,
            [x for pq in bids for x in pq],
            [x for pq in asks for x in pq],
        )

    def events(self, duration_s: float) -> Iterator[tuple[int, Event]]:
        """(receive time, event) for ``duration_s`` seconds of market, starting with a snapshot."""
        cfg = self.cfg
        rng = self.rng
        lat = int(cfg.feed_latency_ms * 1_000_000)
        t = cfg.start_ns
        end = t + int(duration_s * _S)
        yield t + lat, self.snapshot(t)
        # Each diff starts at the previous diff's final id (U == pu), so a snapshot taken
        # between two diffs is straddled by the next one: U <= lastUpdateId <= u, as the
        # futures sync procedure requires of the first diff a client applies.
        self._diff_first = self.update_id
        self._diff_prev = self.update_id
        rates = (cfg.trade_bursts_per_s, cfg.quote_flickers_per_s, cfg.drift_moves_per_s)
        total = sum(rates)
        next_diff = t + int(cfg.diff_interval_ms * 1_000_000)
        next_mark = t + _S
        drift_step = cfg.drift_sd_ticks / math.sqrt(cfg.drift_moves_per_s)
        while True:
            t += int(rng.expovariate(total) * _S) + 1
            while next_diff <= t or next_mark <= t:
                if next_diff <= next_mark:
                    diff = self._flush_diff(next_diff)
                    if diff is not None:
                        yield next_diff + lat, diff
                    next_diff += int(cfg.diff_interval_ms * 1_000_000)
                else:
                    yield next_mark + lat, self._mark(next_mark)
                    next_mark += _S
            if t >= end:
                return
            u = rng.random() * total
            out: list[Event] = []
            if u < rates[0]:
                out = self._trade_burst(t)
            elif u < rates[0] + rates[1]:
                self._flicker()
            else:
                self._drift(round(rng.gauss(0, drift_step)))
            top = self._top_event(t)
            for ev in out:
                yield t + lat, ev
            if top is not None:
                yield t + lat, top

    def _top_event(self, t: int) -> TopOfBookUpdated | None:
        bid, ask = self.best()
        top = (bid, self.bids[bid], ask, self.asks[ask])
        if top == self._last_top:
            return None
        self._last_top = top
        return TopOfBookUpdated(self.spec.inst, t, self.update_id, *top)

    def _flush_diff(self, t: int) -> BookDeltaReceived | None:
        if not self._changes_b and not self._changes_a:
            return None
        ev = BookDeltaReceived(
            self.spec.inst,
            t,
            self._diff_first,
            self.update_id,
            self._diff_prev,
            [x for pq in sorted(self._changes_b.items(), reverse=True) for x in pq],
            [x for pq in sorted(self._changes_a.items()) for x in pq],
        )
        self._changes_b.clear()
        self._changes_a.clear()
        self._diff_prev = self.update_id
        self._diff_first = self.update_id
        return ev

    def _mark(self, t: int) -> MarkPriceUpdated:
        bid, ask = self.best()
        mid_e8 = (bid + ask) * int(self.ins.price_scale.to_decimal(1) * PRICE_E8_SCALE) // 2
        rate = int(float(self.cfg.funding_rate) * 1e8)
        next_funding = (t // (8 * 3600 * _S) + 1) * 8 * 3600 * _S
        return MarkPriceUpdated(self.spec.inst, t, mid_e8, mid_e8, rate, next_funding)

    def _trade_burst(self, t: int) -> list[Event]:
        rng = self.rng
        buy = rng.random() < self.cfg.buy_fraction
        n = max(1, int(rng.expovariate(1 / self.cfg.trades_per_burst)) + 1)
        out: list[Event] = []
        for _ in range(n):
            qty = max(
                1, int(math.exp(rng.gauss(self.cfg.trade_qty_log_mean, self.cfg.trade_qty_log_sd)))
            )
            book = self.asks if buy else self.bids
            price = min(book) if buy else max(book)
            take = min(qty, book[price])
            out.append(
                TradePrinted(
                    self.spec.inst, t, self.trade_id, price, take, Side.BUY if buy else Side.SELL
                )
            )
            self.trade_id += 1
            left = book[price] - take
            self._set(not buy, price, left)
            if not left:
                self._refill(not buy)
        return out

    def _refill(self, is_bid: bool) -> None:
        """Keep ``levels`` levels per side and the book uncrossed after a level emptied."""
        book = self.bids if is_bid else self.asks
        if len(book) < self.cfg.levels:
            far = min(book) if is_bid else max(book)
            self._set(is_bid, far - 1 if is_bid else far + 1, self._level_qty(False))

    def _flicker(self) -> None:
        rng = self.rng
        is_bid = rng.random() < 0.5
        book = self.bids if is_bid else self.asks
        bid, ask = self.best()
        best = bid if is_bid else ask
        r = rng.random()
        if r < 0.7 and ask - bid > 1:  # improve into a wide spread
            self._set(is_bid, best + (1 if is_bid else -1), self._level_qty(True))
        elif r < 0.04 and len(book) > 2:  # the touch is pulled
            self._set(is_bid, best, 0)
        else:  # size at the touch changes
            self._set(is_bid, best, max(1, book[best] + int(rng.gauss(0, book[best] * 0.2 + 5))))
        # a few far levels change too, like the real diffs
        for _ in range(3):
            p = best + (-1 if is_bid else 1) * rng.randint(1, 60)
            if p in book:
                self._set(is_bid, p, 0 if rng.random() < 0.2 else self._level_qty(False))

    def _drift(self, ticks: int) -> None:
        """Move the whole book ``ticks`` ticks (a new mid): one side is eaten, the other refills."""
        if not ticks:
            return
        bid, ask = self.best()
        if ticks > 0:  # up: asks below the new ask vanish, bids follow
            new_ask = ask + ticks
            for p in [p for p in self.asks if p < new_ask]:
                self._set(False, p, 0)
            self._set(False, new_ask, self._level_qty(True))
            new_bid = new_ask - 1 if self.rng.random() < 0.96 else new_ask - self.rng.randint(2, 5)
            for p in range(new_bid, bid, -1):
                if self.rng.random() < 0.6 or p == new_bid:
                    self._set(True, p, self._level_qty(p == new_bid))
        else:
            new_bid = bid + ticks
            for p in [p for p in self.bids if p > new_bid]:
                self._set(True, p, 0)
            self._set(True, new_bid, self._level_qty(True))
            new_ask = new_bid + 1 if self.rng.random() < 0.96 else new_bid + self.rng.randint(2, 5)
            for p in range(new_ask, ask):
                if self.rng.random() < 0.6 or p == new_ask:
                    self._set(False, p, self._level_qty(p == new_ask))
        # trim far levels so the book keeps its size
        for book, is_bid in ((self.bids, True), (self.asks, False)):
            extra = len(book) - self.cfg.levels
            if extra > 0:
                far = sorted(book)[:extra] if is_bid else sorted(book)[-extra:]
                for p in far:
                    self._set(is_bid, p, 0)
            while len(book) < self.cfg.levels:
                self._refill(is_bid)
