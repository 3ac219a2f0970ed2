"""Replay and verify journals, backtest over recorded market data, summaries."""

from ._backtest import BacktestResult, load_exchange_config, run_backtest
from ._sim_minimal import MinimalExchange, MinimalExchangeConfig
from ._summary import InstrumentSummary, Summary, summarize
from ._verify import (
    Divergence,
    ReplayError,
    VerifyResult,
    describe_engine,
    engine_for,
    gc_paused,
    replay_until,
    verify,
)

__all__ = [
    "BacktestResult",
    "Divergence",
    "InstrumentSummary",
    "MinimalExchange",
    "MinimalExchangeConfig",
    "ReplayError",
    "Summary",
    "VerifyResult",
    "describe_engine",
    "engine_for",
    "gc_paused",
    "load_exchange_config",
    "replay_until",
    "run_backtest",
    "summarize",
    "verify",
]
