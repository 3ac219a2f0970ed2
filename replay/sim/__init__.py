"""The simulated Binance USDⓈ-M exchange: matching, queues, latency, rules, money."""

from ._config import FeeConfig, LatencyConfig, QueueConfig, RateLimitConfig, SimConfig
from ._exchange import SimExchange, SimOrder
from ._latency import FeedClock, LatencyModel, measure_round_trips
from ._queue import PowerQueue, QueueModel, RiskAverseQueue
from ._ratelimit import RateLimiter, request_cost
from ._rules import Reject, check_price_band, check_static, parse_price, parse_qty
from ._scheduler import ScheduledExchange

__all__ = [
    "FeeConfig",
    "FeedClock",
    "LatencyConfig",
    "LatencyModel",
    "PowerQueue",
    "QueueConfig",
    "QueueModel",
    "RateLimitConfig",
    "RateLimiter",
    "Reject",
    "RiskAverseQueue",
    "ScheduledExchange",
    "SimConfig",
    "SimExchange",
    "SimOrder",
    "check_price_band",
    "check_static",
    "measure_round_trips",
    "parse_price",
    "parse_qty",
    "request_cost",
]
