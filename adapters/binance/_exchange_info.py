"""exchangeInfo -> ``InstrumentLoaded``, and a small built-in table for offline use.

The recorded market-data files carry no exchangeInfo, so imports of them need each symbol's
tick size, step size and min notional from somewhere: ``--exchange-info FILE`` (a saved
``GET /fapi/v1/exchangeInfo`` answer) is exact; otherwise the built-in table below is used.
Its values are facts copied from real exchangeInfo answers (BTCUSDT/ETHUSDT as captured in the
nautilus_trader test resources; XRPUSDT from cryptofeed's 2021-07-22 capture). The USDC-M rows
follow Binance's published USDⓈ-M contract specs for those symbols; check them against a live
exchangeInfo before trading real money.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from engine import QUOTE_SCALE, RATE_SCALE, InstrumentLoaded, Scale
from engine._units import decimal_to_scaled

__all__ = [
    "BUILTIN_SYMBOLS",
    "builtin_instrument",
    "instrument_from_symbol_info",
    "load_exchange_info",
]


def _row(
    symbol: str,
    base: str,
    quote: str,
    tick: str,
    step: str,
    min_qty: str,
    max_qty: str,
    min_notional: str,
    min_price: str,
    max_price: str,
    up: str,
    down: str,
    market_max_qty: str,
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "contractType": "PERPETUAL",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "tickSize": tick,
                "minPrice": min_price,
                "maxPrice": max_price,
            },
            {"filterType": "LOT_SIZE", "stepSize": step, "minQty": min_qty, "maxQty": max_qty},
            {
                "filterType": "MARKET_LOT_SIZE",
                "stepSize": step,
                "minQty": min_qty,
                "maxQty": market_max_qty,
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": min_notional},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": up,
                "multiplierDown": down,
                "multiplierDecimal": "4",
            },
        ],
    }


BUILTIN_SYMBOLS: dict[str, dict[str, Any]] = {
    r["symbol"]: r
    for r in (
        _row(
            "BTCUSDT",
            "BTC",
            "USDT",
            "0.10",
            "0.001",
            "0.001",
            "1000",
            "10",
            "402",
            "1246396.60",
            "1.1000",
            "0.5454",
            "1000",
        ),
        _row(
            "ETHUSDT",
            "ETH",
            "USDT",
            "0.01",
            "0.001",
            "0.001",
            "10000",
            "10",
            "28.23",
            "144004.03",
            "1.1000",
            "0.9000",
            "10000",
        ),
        _row(
            "XRPUSDT",
            "XRP",
            "USDT",
            "0.0001",
            "0.1",
            "0.1",
            "1000000",
            "5",
            "0.0143",
            "100000",
            "1.1500",
            "0.8500",
            "1000000",
        ),
        _row(
            "BTCUSDC",
            "BTC",
            "USDC",
            "0.1",
            "0.001",
            "0.001",
            "500",
            "5",
            "100",
            "1000000",
            "1.0500",
            "0.9500",
            "50",
        ),
        _row(
            "ETHUSDC",
            "ETH",
            "USDC",
            "0.01",
            "0.001",
            "0.001",
            "10000",
            "5",
            "10",
            "100000",
            "1.0500",
            "0.9500",
            "2000",
        ),
    )
}


def _filters(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filterType"]: f for f in info.get("filters", [])}


def instrument_from_symbol_info(inst: int, info: dict[str, Any]) -> InstrumentLoaded:
    """One ``symbols[]`` entry of exchangeInfo -> InstrumentLoaded (integers only)."""
    f = _filters(info)
    symbol = info["symbol"]
    try:
        price_f = f["PRICE_FILTER"]
        lot_f = f["LOT_SIZE"]
    except KeyError as e:
        raise ValueError(f"{symbol}: exchangeInfo lacks the {e.args[0]} filter") from None
    price = Scale(price_f["tickSize"])
    qty = Scale(lot_f["stepSize"])
    market = f.get("MARKET_LOT_SIZE", lot_f)
    pct = f.get("PERCENT_PRICE")
    notional = f.get("MIN_NOTIONAL", {}).get("notional", "0")
    max_price = price_f.get("maxPrice", "0")
    return InstrumentLoaded(
        inst=inst,
        symbol=symbol,
        base_asset=info.get("baseAsset", ""),
        quote_asset=info.get("quoteAsset", ""),
        margin_asset=info.get("marginAsset", info.get("quoteAsset", "")),
        tick_size=price_f["tickSize"],
        step_size=lot_f["stepSize"],
        min_qty=qty.to_units_floor(lot_f.get("minQty", "0")),
        max_qty=qty.to_units_floor(lot_f.get("maxQty", "0")),
        min_notional=decimal_to_scaled(str(notional), 8) * (QUOTE_SCALE // 10**8),
        max_num_orders=int(f.get("MAX_NUM_ORDERS", {}).get("limit", 200)),
        min_price=price.to_units_floor(price_f.get("minPrice", "0")),
        max_price=price.to_units_floor(max_price),
        percent_up=decimal_to_scaled(pct["multiplierUp"], 8) * (RATE_SCALE // 10**8) if pct else 0,
        percent_down=decimal_to_scaled(pct["multiplierDown"], 8) * (RATE_SCALE // 10**8)
        if pct
        else 0,
        market_max_qty=qty.to_units_floor(market.get("maxQty", "0")),
        contract_type=info.get("contractType", "PERPETUAL"),
    )


def load_exchange_info(path: str | Path) -> dict[str, dict[str, Any]]:
    """symbol -> symbols[] entry of a saved exchangeInfo JSON file.

    Accepts the whole answer (``{"symbols": [...]}``), a list of symbol entries, or one entry.
    """
    try:
        data = msgspec.json.decode(Path(path).read_bytes())
    except FileNotFoundError:
        raise ValueError(f"exchange info file {path} not found") from None
    except msgspec.DecodeError as e:
        raise ValueError(f"{path} is not JSON ({e})") from None
    if isinstance(data, dict) and "symbols" in data:
        entries = data["symbols"]
    elif isinstance(data, dict) and "symbol" in data:
        entries = [data]
    elif isinstance(data, list):
        entries = data
    else:
        raise ValueError(f"{path} is not an exchangeInfo answer (no 'symbols' list)")
    if not all(isinstance(e, dict) and "symbol" in e and "filters" in e for e in entries):
        raise ValueError(f"{path}: every symbol entry needs 'symbol' and 'filters'")
    return {s["symbol"]: s for s in entries}


def builtin_instrument(
    inst: int, symbol: str, extra: Iterable[dict[str, dict[str, Any]]] = ()
) -> InstrumentLoaded:
    """InstrumentLoaded for ``symbol`` from ``extra`` tables first, then the built-in table."""
    for table in extra:
        if symbol in table:
            return instrument_from_symbol_info(inst, table[symbol])
    if symbol in BUILTIN_SYMBOLS:
        return instrument_from_symbol_info(inst, BUILTIN_SYMBOLS[symbol])
    raise KeyError(symbol)
