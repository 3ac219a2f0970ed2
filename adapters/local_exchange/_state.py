"""The shared state of the exchange core, and the one lookup every handler uses."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from engine import (
    Event,
    Instrument,
    Intent,
    Position,
)
from replay.sim import RateLimiter, SimConfig, SimExchange

from ._faults import Faults
from ._history import MarketHistory
from ._params import ApiError, _missing
from ._records import IncomeRow, OrderRec, TradeRec

__all__ = ["ExchangeState"]


class ExchangeState:
    """The attributes the handler mixins share (set by ``LocalExchange.__init__``)."""

    sim: SimExchange
    limiter: RateLimiter
    config: SimConfig
    faults: Faults
    rng: random.Random
    by_symbol: dict[str, Instrument]
    by_inst: dict[int, Instrument]
    orders: dict[int, OrderRec]
    by_cid: dict[str, int]
    _pending: dict[str, OrderRec]
    trades: list[TradeRec]
    income: list[IncomeRow]
    next_tran_id: int
    history: MarketHistory
    shadow: dict[int, Position]
    fees_paid: dict[int, int]
    countdowns: dict[str, tuple[int, int]]
    leverage: dict[str, int]
    margin_type: dict[str, str]
    listen_key: str
    listen_key_expiry_ns: int
    listen_key_ttl_ns: int
    next_client_seq: int
    user_out: list[dict[str, Any]]
    market_out: list[tuple[str, str, dict[str, Any]]]
    _journal: Callable[[int, Event | None, Intent | None], None] | None

    def _ins(self, params: dict[str, str]) -> Instrument:
        symbol = params.get("symbol")
        if not symbol:
            raise _missing("symbol")
        ins = self.by_symbol.get(symbol)
        if ins is None:
            raise ApiError(-1121, "Invalid symbol.")
        return ins
