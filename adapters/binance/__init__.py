"""Binance USDⓈ-M: JSON -> events (pure) and, later, the trio clients."""

from ._exchange_info import (
    BUILTIN_SYMBOLS,
    builtin_instrument,
    instrument_from_symbol_info,
    load_exchange_info,
)
from ._parse import MarketParser, UnknownSymbol

__all__ = [
    "BUILTIN_SYMBOLS",
    "MarketParser",
    "UnknownSymbol",
    "builtin_instrument",
    "instrument_from_symbol_info",
    "load_exchange_info",
]
