"""The simulated exchange's configuration: the ``backtest`` section of a config file."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec

__all__ = ["FeeConfig", "LatencyConfig", "QueueConfig", "RateLimitConfig", "SimConfig"]

Ms = Annotated[float, msgspec.Meta(ge=0, le=60_000)]


class LatencyConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: constant: always entry_ms / response_ms; lognormal: those are medians with shape sigma;
    #: measured: round trips sampled from the order acks of ``journal`` (a live/paper journal)
    model: Literal["constant", "lognormal", "measured"] = "constant"
    #: our request -> the exchange (ms)
    entry_ms: Ms = 5.0
    #: the exchange's answer or fill -> us (ms)
    response_ms: Ms = 5.0
    #: lognormal shape (sd of log latency)
    sigma: Annotated[float, msgspec.Meta(ge=0, le=3)] = 0.5
    #: measured: the journal whose acks give the round trips
    journal: str = ""
    #: market data: the exchange saw each event this long before we received it. A number of
    #: ms, or "recorded": from the data's own exchange vs receive timestamps (the recorder's
    #: clock offset removed, see replay/sim/_latency.py)
    feed: float | Literal["recorded"] = 0.0


class QueueConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: risk_averse: only trades at our price move us up; power: cancellations are split
    #: between the queue ahead of us and behind us with weights ahead**n : behind**n
    #: (hftbacktest's PowerProbQueueModel); n integer 1..4
    model: Literal["risk_averse", "power"] = "power"
    power: Annotated[int, msgspec.Meta(ge=1, le=4)] = 2
    #: candle-only data (no book, no trades): fill a resting order when the candle trades
    #: through its price (strictly beyond), or when it merely touches it
    kline_fill: Literal["through", "touch"] = "through"


class FeeConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: fractions: 0.0002 = 2 bp; a negative maker fee is a rebate
    maker: Decimal = Decimal("0.0002")
    taker: Decimal = Decimal("0.0005")
    #: per-symbol overrides, e.g. {BTCUSDC: {maker: "0", taker: "0.0004"}}
    symbols: dict[str, dict[str, Decimal]] = {}


class RateLimitConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    orders_per_10s: Annotated[int, msgspec.Meta(ge=1)] = 300
    orders_per_minute: Annotated[int, msgspec.Meta(ge=1)] = 1200
    weight_per_minute: Annotated[int, msgspec.Meta(ge=1)] = 2400
    #: 429s answered in one window before the IP is banned (418)
    ban_after_429s: Annotated[int, msgspec.Meta(ge=1)] = 5
    ban_seconds: Annotated[int, msgspec.Meta(ge=1)] = 120


class SimConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: seed of every random draw of the simulator (latency draws, queue model); journaled
    seed: int = 1
    latency: LatencyConfig = msgspec.field(default_factory=LatencyConfig)
    queue: QueueConfig = msgspec.field(default_factory=QueueConfig)
    fees: FeeConfig = msgspec.field(default_factory=FeeConfig)
    rate_limits: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)
    #: wallet balance at the start, per margin asset
    balances: dict[str, Decimal] = msgspec.field(
        default_factory=lambda: {"USDT": Decimal(10_000), "USDC": Decimal(10_000)}
    )
    leverage: Annotated[int, msgspec.Meta(ge=1, le=125)] = 10
    #: maintenance margin rate for the liquidation estimate (Binance's first bracket: 0.4%)
    maint_margin_rate: Decimal = Decimal("0.004")
    #: the account is in hedge mode: every one-way order is refused with -4061
    hedge_mode: bool = False
    #: answer RequestSnapshot(BOOK) with the simulator's own book (as the REST depth call would)
    serve_book_snapshots: bool = True

    def __post_init__(self) -> None:
        if self.latency.model == "measured" and not self.latency.journal:
            raise ValueError(
                "latency.model 'measured' needs latency.journal (a live or paper journal)"
            )
