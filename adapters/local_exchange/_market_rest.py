"""Market data over REST: ping, time, exchangeInfo (symbols and filters), depth, bookTicker,
premiumIndex, and the history the server has played (``_history.py``): klines, aggTrades,
trades, ticker/24hr, fundingRate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine import (
    QUOTE_SCALE,
    Instrument,
    Side,
)
from engine._units import scaled_to_text

from . import _wire as wire
from ._history import INTERVALS_MS
from ._params import ApiError, _int, _missing
from ._records import rec_quote
from ._state import ExchangeState

__all__ = ["MarketRestMixin"]

_MS = 1_000_000


class MarketRestMixin(ExchangeState):
    def _h_ping(self, params: dict[str, str], now: int) -> Any:
        return {}

    def _h_time(self, params: dict[str, str], now: int) -> Any:
        return {"serverTime": now // _MS}

    def _h_exchange_info(self, params: dict[str, str], now: int) -> Any:
        cfg = self.config.rate_limits
        assets = sorted({ins.spec.margin_asset for ins in self.by_inst.values()})
        return {
            "timezone": "UTC",
            "serverTime": now // _MS,
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": cfg.weight_per_minute,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": cfg.orders_per_minute,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "SECOND",
                    "intervalNum": 10,
                    "limit": cfg.orders_per_10s,
                },
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"} for a in assets
            ],
            "symbols": [_symbol_info(ins) for ins in self.by_inst.values()],
        }

    def _h_depth(self, params: dict[str, str], now: int) -> Any:
        ins = self._ins(params)
        limit = _int(params, "limit", 500)
        if limit not in (5, 10, 20, 50, 100, 500, 1000):
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        m = self.sim.markets[ins.inst]
        bids = sorted((p for p, q in m.bids.items() if q), reverse=True)[:limit]
        asks = sorted(p for p, q in m.asks.items() if q)[:limit]
        pt, qt = ins.price_text, ins.qty_text
        ms = now // _MS
        return {
            "lastUpdateId": m.book_u,
            "E": ms,
            "T": ms,
            "bids": [[pt(p), qt(m.bids[p])] for p in bids],
            "asks": [[pt(p), qt(m.asks[p])] for p in asks],
        }

    def _h_book_ticker(self, params: dict[str, str], now: int) -> Any:
        symbols = [self._ins(params)] if params.get("symbol") else list(self.by_inst.values())
        rows = []
        for ins in symbols:
            m = self.sim.markets[ins.inst]
            bid, ask = m.best()
            rows.append(
                {
                    "symbol": ins.symbol,
                    "bidPrice": ins.price_text(bid),
                    "bidQty": ins.qty_text(m.level(Side.BUY, bid)),
                    "askPrice": ins.price_text(ask),
                    "askQty": ins.qty_text(m.level(Side.SELL, ask)),
                    "time": now // _MS,
                    "lastUpdateId": max(m.top_u, m.book_u),
                }
            )
        return rows[0] if params.get("symbol") else rows

    def _h_premium_index(self, params: dict[str, str], now: int) -> Any:
        symbols = [self._ins(params)] if params.get("symbol") else list(self.by_inst.values())
        rows = []
        for ins in symbols:
            m = self.sim.markets[ins.inst]
            mark = wire.e8_text(self._mark_e8(ins.inst))
            rows.append(
                {
                    "symbol": ins.symbol,
                    "markPrice": mark,
                    "indexPrice": mark,
                    "estimatedSettlePrice": mark,
                    "lastFundingRate": wire.rate_8(m.funding_rate),
                    "interestRate": "0.00010000",
                    "nextFundingTime": m.next_funding_ns // _MS,
                    "time": now // _MS,
                }
            )
        return rows[0] if params.get("symbol") else rows

    # -- history (``_history.py``): klines, trades, 24 h ticker, funding ---------------------

    def _h_klines(self, params: dict[str, str], now: int) -> Any:
        ins = self._ins(params)
        interval = params.get("interval")
        if not interval:
            raise _missing("interval")
        if interval not in INTERVALS_MS:
            raise ApiError(-1120, "Invalid interval.")
        limit = _int(params, "limit", 500)
        if not 1 <= limit <= 1500:
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        start = _int(params, "startTime", 0)
        end = _int(params, "endTime", 0)
        span = INTERVALS_MS[interval]
        pt, qt = ins.price_text, ins.qty_text
        rows: list[list[Any]] = []
        recorded = self.history.recorded_klines(ins.inst, interval)
        if recorded:
            for k in recorded:
                t = k.open_ns // _MS
                rows.append(
                    [
                        t,
                        pt(k.open),
                        pt(k.high),
                        pt(k.low),
                        pt(k.close),
                        qt(k.volume),
                        k.close_ns // _MS - 1,
                        wire.money_text(k.quote_volume),
                        k.trades,
                        qt(k.taker_buy_volume),
                        "0",
                        "0",
                    ]
                )
        else:
            for c in self.history.candles(ins.inst, interval, now // _MS):
                rows.append(
                    [
                        c.open_ms,
                        pt(c.open),
                        pt(c.high),
                        pt(c.low),
                        pt(c.close),
                        qt(c.volume),
                        c.open_ms + span - 1,
                        wire.money_text(c.quote),
                        c.trades,
                        qt(c.taker_volume),
                        wire.money_text(c.taker_quote),
                        "0",
                    ]
                )
        rows = [r for r in rows if (not start or r[6] >= start) and (not end or r[0] <= end)]
        # Binance: from startTime forward when it is given, else the latest ``limit``
        return rows[:limit] if start else rows[-limit:]

    def _h_agg_trades(self, params: dict[str, str], now: int) -> Any:
        ins = self._ins(params)
        limit = _int(params, "limit", 500)
        if not 1 <= limit <= 1000:
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        from_id = _int(params, "fromId", -1)
        start = _int(params, "startTime", 0)
        end = _int(params, "endTime", 0)
        if from_id >= 0 and (start or end):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        if start and end and end - start > 3_600_000:
            raise ApiError(-1127, "More than 1 hours between startTime and endTime.")
        rows = [
            t
            for t in self.history.trades(ins.inst)
            if t.trade_id >= from_id
            and (not start or t.time_ms >= start)
            and (not end or t.time_ms <= end)
        ]
        rows = rows[:limit] if (from_id >= 0 or start) else rows[-limit:]
        pt, qt = ins.price_text, ins.qty_text
        # one print per aggregate: the feed's prints are already aggregated (ids f == l == a)
        return [
            {
                "a": t.trade_id,
                "p": pt(t.price),
                "q": qt(t.qty),
                "f": t.trade_id,
                "l": t.trade_id,
                "T": t.time_ms,
                "m": t.buyer_maker,
            }
            for t in rows
        ]

    def _h_trades(self, params: dict[str, str], now: int) -> Any:
        ins = self._ins(params)
        limit = _int(params, "limit", 500)
        if not 1 <= limit <= 1000:
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        rows = list(self.history.trades(ins.inst))[-limit:]
        pt, qt = ins.price_text, ins.qty_text
        return [
            {
                "id": t.trade_id,
                "price": pt(t.price),
                "qty": qt(t.qty),
                "quoteQty": rec_quote(ins, ins.notional(t.price, t.qty)),
                "time": t.time_ms,
                "isBuyerMaker": t.buyer_maker,
            }
            for t in rows
        ]

    def _h_ticker_24hr(self, params: dict[str, str], now: int) -> Any:
        symbols = [self._ins(params)] if params.get("symbol") else list(self.by_inst.values())
        now_ms = now // _MS
        rows = []
        for ins in symbols:
            pt, qt = ins.price_text, ins.qty_text
            trades = self.history.trades(ins.inst)
            w = self.history.window(ins.inst, now_ms - 86_400_000 + 1, now_ms + 1)
            last = trades[-1] if trades else None
            last_px = last.price if last else 0
            if w is None:
                open_px = high = low = last_px
                volume = quote = count = 0
                first_id = last_id = -1
            else:
                open_px, high, low = w.open, w.high, w.low
                volume, quote, count = w.volume, w.quote, w.trades
                first_id, last_id = w.first_id, w.last_id
            change = last_px - open_px
            pct = Decimal(change) / Decimal(open_px) * 100 if open_px else Decimal(0)
            d = ins.price_scale.decimals
            if volume:
                vwap = Decimal(quote) / QUOTE_SCALE / ins.qty_scale.to_decimal(volume)
                wavg = f"{vwap:.{d}f}"
            else:
                wavg = pt(0)
            rows.append(
                {
                    "symbol": ins.symbol,
                    "priceChange": pt(change) if change >= 0 else "-" + pt(-change),
                    "priceChangePercent": f"{pct:.3f}",
                    "weightedAvgPrice": wavg,
                    "lastPrice": pt(last_px),
                    "lastQty": qt(last.qty if last else 0),
                    "openPrice": pt(open_px),
                    "highPrice": pt(high),
                    "lowPrice": pt(low),
                    "volume": qt(volume),
                    "quoteVolume": wire.money_text(quote),
                    "openTime": now_ms - 86_400_000,
                    "closeTime": now_ms,
                    "firstId": first_id,
                    "lastId": last_id,
                    "count": count,
                }
            )
        return rows[0] if params.get("symbol") else rows

    def _h_funding_rate(self, params: dict[str, str], now: int) -> Any:
        symbols = [self._ins(params)] if params.get("symbol") else list(self.by_inst.values())
        limit = _int(params, "limit", 100)
        if not 1 <= limit <= 1000:
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        start = _int(params, "startTime", 0)
        end = _int(params, "endTime", 0)
        rows = []
        for ins in symbols:
            for f in self.history.funding(ins.inst):
                if (not start or f.time_ms >= start) and (not end or f.time_ms <= end):
                    rows.append((f.time_ms, ins.inst, ins.symbol, f))
        rows.sort(key=lambda r: (r[0], r[1]))
        rows = rows[:limit] if start else rows[-limit:]
        return [
            {
                "symbol": symbol,
                "fundingRate": wire.rate_8(f.rate),
                "fundingTime": t,
                "markPrice": wire.e8_text(f.mark_e8),
            }
            for t, _, symbol, f in rows
        ]


def _symbol_info(ins: Instrument) -> dict[str, Any]:
    spec = ins.spec
    pt, qt = ins.price_text, ins.qty_text
    pct: list[dict[str, Any]] = []
    if spec.percent_up:
        pct.append(
            {
                "multiplierDown": rate_4(spec.percent_down),
                "multiplierUp": rate_4(spec.percent_up),
                "multiplierDecimal": "4",
                "filterType": "PERCENT_PRICE",
            }
        )
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": spec.contract_type,
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base_asset,
        "quoteAsset": spec.quote_asset,
        "marginAsset": spec.margin_asset,
        "pricePrecision": ins.price_scale.decimals,
        "quantityPrecision": ins.qty_scale.decimals,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {
                "minPrice": pt(spec.min_price),
                "maxPrice": pt(spec.max_price),
                "filterType": "PRICE_FILTER",
                "tickSize": spec.tick_size,
            },
            {
                "stepSize": spec.step_size,
                "filterType": "LOT_SIZE",
                "maxQty": qt(spec.max_qty),
                "minQty": qt(spec.min_qty),
            },
            {
                "stepSize": spec.step_size,
                "filterType": "MARKET_LOT_SIZE",
                "maxQty": qt(spec.market_max_qty or spec.max_qty),
                "minQty": qt(spec.min_qty),
            },
            {"limit": spec.max_num_orders, "filterType": "MAX_NUM_ORDERS"},
            {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
            {
                "notional": wire.money_text(spec.min_notional).rstrip("0").rstrip("."),
                "filterType": "MIN_NOTIONAL",
            },
            *pct,
        ],
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def rate_4(v: int) -> str:
    return scaled_to_text(v // 10**4, 4)
