"""Engine events -> Binance USDⓈ-M JSON, field for field (pure, no I/O).

Market streams (depthUpdate, bookTicker, trade, aggTrade, markPriceUpdate, kline) and the
REST depth snapshot are built here from the engine's integer events; the user data stream
and the REST order objects are built in ``_core.py`` from its order records. Decimals are
strings as Binance prints them: prices and quantities with the filter's decimals
(``tickSize "0.10"`` -> ``"61800.20"``), money and mark prices with 8 decimals.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine import (
    RATE_SCALE,
    BookDeltaReceived,
    Instrument,
    KlineUpdated,
    MarkPriceUpdated,
    Side,
    TopOfBookUpdated,
    TradePrinted,
)
from engine._units import scaled_to_text

__all__ = [
    "Kline",
    "book_ticker",
    "depth_update",
    "e8_text",
    "encode",
    "kline_from_event",
    "levels",
    "mark_price",
    "money_text",
    "rate_8",
    "rate_text",
    "trade_messages",
]

_MS = 1_000_000

encode = msgspec.json.Encoder().encode


def money_text(minor: int) -> str:
    """Minor units (1e-8) -> ``"12.34000000"``."""
    return scaled_to_text(minor, 8)


def e8_text(v: int) -> str:
    return scaled_to_text(v, 8)


def rate_text(v: int) -> str:
    """RATE_SCALE integer -> the shortest decimal, as commissionRate prints it (``"0.0002"``)."""
    text = scaled_to_text(v, 8).rstrip("0")
    return text + "0" if text.endswith(".") else text


def rate_8(v: int) -> str:
    """RATE_SCALE integer -> 8 decimals (the mark-price stream's funding rate)."""
    return scaled_to_text(v * 10**8 // RATE_SCALE, 8)


def levels(ins: Instrument, flat: list[int]) -> list[list[str]]:
    pt, qt = ins.price_text, ins.qty_text
    return [[pt(flat[i]), qt(flat[i + 1])] for i in range(0, len(flat), 2)]


def depth_update(ins: Instrument, ev: BookDeltaReceived) -> dict[str, Any]:
    ms = ev.ts_ns // _MS
    return {
        "e": "depthUpdate",
        "E": ms,
        "T": ms,
        "s": ins.symbol,
        "U": ev.first_update_id,
        "u": ev.final_update_id,
        "pu": ev.prev_final_update_id,
        "b": levels(ins, ev.bids),
        "a": levels(ins, ev.asks),
    }


def book_ticker(ins: Instrument, ev: TopOfBookUpdated) -> dict[str, Any]:
    ms = ev.ts_ns // _MS
    return {
        "e": "bookTicker",
        "u": ev.update_id,
        "E": ms,
        "T": ms,
        "s": ins.symbol,
        "b": ins.price_text(ev.bid),
        "B": ins.qty_text(ev.bid_qty),
        "a": ins.price_text(ev.ask),
        "A": ins.qty_text(ev.ask_qty),
    }


def trade_messages(ins: Instrument, ev: TradePrinted) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``trade``, ``aggTrade``) for one print; ``m`` is true when the seller was the taker."""
    ms = ev.ts_ns // _MS
    p, q = ins.price_text(ev.price), ins.qty_text(ev.qty)
    maker_buyer = ev.taker_side is Side.SELL
    trade = {
        "e": "trade",
        "E": ms,
        "T": ms,
        "s": ins.symbol,
        "t": ev.trade_id,
        "p": p,
        "q": q,
        "X": "MARKET",
        "m": maker_buyer,
    }
    agg = {
        "e": "aggTrade",
        "E": ms,
        "a": ev.trade_id,
        "s": ins.symbol,
        "p": p,
        "q": q,
        "nq": q,
        "f": ev.trade_id,
        "l": ev.trade_id,
        "T": ms,
        "m": maker_buyer,
    }
    return trade, agg


def mark_price(ins: Instrument, ev: MarkPriceUpdated) -> dict[str, Any]:
    mark = e8_text(ev.mark_e8)
    return {
        "e": "markPriceUpdate",
        "E": ev.ts_ns // _MS,
        "s": ins.symbol,
        "p": mark,
        "ap": mark,
        "P": mark,
        "i": e8_text(ev.index_e8 or ev.mark_e8),
        "r": rate_8(ev.funding_rate),
        "T": ev.next_funding_ns // _MS,
    }


_INTERVALS_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}


class Kline:
    """One candle built from trades, for ``<symbol>@kline_<interval>``."""

    __slots__ = (
        "close",
        "first_id",
        "high",
        "interval",
        "last_emit_ms",
        "last_id",
        "low",
        "open",
        "open_ms",
        "quote",
        "span",
        "taker_quote",
        "taker_vol",
        "trades",
        "volume",
    )

    def __init__(self, interval: str) -> None:
        self.interval = interval
        self.span = _INTERVALS_MS[interval]
        self.open_ms = -1
        self.last_emit_ms = -1
        self._reset(0, 0, 0)

    @staticmethod
    def valid(interval: str) -> bool:
        return interval in _INTERVALS_MS

    def _reset(self, open_ms: int, price: int, trade_id: int) -> None:
        self.open_ms = open_ms
        self.open = self.high = self.low = self.close = price
        self.volume = self.quote = self.taker_vol = self.taker_quote = 0
        self.trades = 0
        self.first_id = self.last_id = trade_id

    def on_trade(self, ins: Instrument, ev: TradePrinted) -> list[dict[str, Any]]:
        """Returns the kline messages due: the closed candle when a new one starts, and the
        forming one at most every 250 ms (Binance's push rate)."""
        ms = ev.ts_ns // _MS
        out: list[dict[str, Any]] = []
        start = ms - ms % self.span
        if self.open_ms != start:
            if self.open_ms >= 0 and self.trades:
                out.append(self.message(ins, ms, closed=True))
            self._reset(start, ev.price, ev.trade_id)
        self.high = max(self.high, ev.price)
        self.low = min(self.low, ev.price)
        self.close = ev.price
        self.trades += 1
        self.last_id = ev.trade_id
        notional = ins.notional(ev.price, ev.qty)
        self.volume += ev.qty
        self.quote += notional
        if ev.taker_side is Side.BUY:
            self.taker_vol += ev.qty
            self.taker_quote += notional
        if ms - self.last_emit_ms >= 250:
            self.last_emit_ms = ms
            out.append(self.message(ins, ms, closed=False))
        return out

    def message(self, ins: Instrument, now_ms: int, *, closed: bool) -> dict[str, Any]:
        pt, qt = ins.price_text, ins.qty_text
        return {
            "e": "kline",
            "E": now_ms,
            "s": ins.symbol,
            "k": {
                "t": self.open_ms,
                "T": self.open_ms + self.span - 1,
                "s": ins.symbol,
                "i": self.interval,
                "f": self.first_id,
                "L": self.last_id,
                "o": pt(self.open),
                "c": pt(self.close),
                "h": pt(self.high),
                "l": pt(self.low),
                "v": qt(self.volume),
                "n": self.trades,
                "x": closed,
                "q": money_text(self.quote),
                "V": qt(self.taker_vol),
                "Q": money_text(self.taker_quote),
                "B": "0",
            },
        }


def kline_from_event(ins: Instrument, ev: KlineUpdated) -> dict[str, Any]:
    """A recorded candle (kline data sources) as Binance's kline message."""
    pt, qt = ins.price_text, ins.qty_text
    return {
        "e": "kline",
        "E": ev.ts_ns // _MS,
        "s": ins.symbol,
        "k": {
            "t": ev.open_ns // _MS,
            "T": ev.close_ns // _MS - 1,
            "s": ins.symbol,
            "i": ev.interval,
            "f": 0,
            "L": 0,
            "o": pt(ev.open),
            "c": pt(ev.close),
            "h": pt(ev.high),
            "l": pt(ev.low),
            "v": qt(ev.volume),
            "n": ev.trades,
            "x": ev.closed,
            "q": money_text(ev.quote_volume),
            "V": qt(ev.taker_buy_volume),
            "Q": "0",
            "B": "0",
        },
    }
