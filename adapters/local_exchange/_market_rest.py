"""Market data over REST: ping, time, exchangeInfo (symbols and filters), depth, bookTicker,
premiumIndex."""

from __future__ import annotations

from typing import Any

from engine import (
    Instrument,
    Side,
)
from engine._units import scaled_to_text

from . import _wire as wire
from ._params import ApiError, _int
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
