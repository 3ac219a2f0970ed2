"""Replay and verify journals, backtest with the simulated exchange, summaries."""

from ._backtest import MARKET_TYPES, BacktestResult, load_sim_config, run_backtest
from ._compare import ActualRun, Comparison, actual_run, compare
from ._summary import InstrumentSummary, RunStats, Summary
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
    "MARKET_TYPES",
    "ActualRun",
    "BacktestResult",
    "Comparison",
    "Divergence",
    "InstrumentSummary",
    "ReplayError",
    "RunStats",
    "Summary",
    "VerifyResult",
    "actual_run",
    "compare",
    "describe_engine",
    "engine_for",
    "gc_paused",
    "load_sim_config",
    "replay_until",
    "run_backtest",
    "verify",
]
