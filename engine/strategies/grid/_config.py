"""The grid's config section. Key names follow OpenSQT's ``config.example.yaml`` (its
``trading.*``, ``timing.*``, ``system.cancel_on_exit`` and ``risk_control.*`` keys, flattened
into one ``strategy:`` section) wherever they mean the same thing; ``ref/opensqt.md`` §5.

Everything that can be checked without the exchange's rules is checked here, with one line
per bad value. What needs ``tickSize``/``stepSize`` (the interval on the tick grid, the amount
above the minimum notional) is checked when the instrument loads (``Grid.on_instrument``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from engine._events import KLINE_INTERVAL_S
from engine.risk import RiskConfig

__all__ = ["INTERVAL_NS", "GridConfig", "RiskControlConfig"]

#: Binance kline intervals in nanoseconds (the monitor's staleness clock)
INTERVAL_NS: dict[str, int] = {k: v * 1_000_000_000 for k, v in KLINE_INTERVAL_S.items()}

Count = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
Seconds = Annotated[int, msgspec.Meta(ge=1, le=86_400)]


class RiskControlConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The market-wide volume-spike breaker (OpenSQT ``risk_control``, ref §4.2)."""

    #: off unless set; OpenSQT's example turns it on
    enabled: bool = False
    #: symbols whose candles are watched (their klines must be in the data / subscribed)
    monitor_symbols: list[str] = msgspec.field(default_factory=lambda: ["BTCUSDT"])
    #: candle interval watched, Binance spelling
    interval: str = "1m"
    #: a candle is abnormal when its volume exceeds the average times this (and it closes
    #: below the average close)
    volume_multiplier: Decimal = Decimal(3)
    #: closed candles in the averages
    average_window: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    #: symbols that must look normal again to resume; clamped to [1, number of symbols]
    recovery_threshold: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 3

    def __post_init__(self) -> None:
        if not self.monitor_symbols:
            raise ValueError("risk_control.monitor_symbols must name at least one symbol")
        if len(set(self.monitor_symbols)) != len(self.monitor_symbols):
            raise ValueError("risk_control.monitor_symbols lists a symbol twice")
        if self.interval not in INTERVAL_NS:
            raise ValueError(
                f"risk_control.interval {self.interval!r} is not a Binance kline interval "
                f"({', '.join(INTERVAL_NS)})"
            )
        if self.volume_multiplier <= 0:
            raise ValueError("risk_control.volume_multiplier must be positive")


class GridConfig(
    msgspec.Struct, tag="grid", tag_field="kind", forbid_unknown_fields=True, kw_only=True
):
    #: the perpetual to trade, e.g. BTCUSDT or BTCUSDC
    symbol: str
    #: long: buy below, sell one interval up; short: sell above, buy back one interval down;
    #: neutral: both at once (a long grid below the price and a short grid above it)
    mode: Literal["long", "short", "neutral"] = "long"
    #: grid spacing in price units; must be a whole number of ticks
    price_interval: Decimal
    #: quote amount (USDT/USDC) per level; each order's quantity is this / price on the step grid
    order_quantity: Decimal
    #: an exit smaller than this (quote) is not placed; the holding is merged (see README)
    min_order_value: Decimal = Decimal(20)
    #: entry levels kept below (long) / above (short) the price, and most new entries per update
    buy_window_size: Count
    #: exits allowed up to this many intervals beyond the price, and most new exits per update
    sell_window_size: Count | None = None
    #: cap on live grid orders; the cleaner fires at this count
    order_cleanup_threshold: Count = 100
    #: orders the cleaner cancels per run
    cleanup_batch_size: Count = 10
    #: after -2019 (margin insufficient) no new entries for this long (exits continue)
    margin_lock_duration_seconds: Seconds = 10
    #: startup check: balance x leverage / order_quantity must allow at least this many levels
    position_safety_check: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 100
    #: seconds between reconciliations with the exchange's account snapshot
    reconcile_interval: Seconds = 30
    #: seconds between order-cleaner runs
    order_cleanup_interval: Seconds = 60
    #: price updates are coalesced: the grid adjusts at most once per this many ms (0 = every trade)
    price_send_interval: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 50
    #: lattice anchor: "aligned" (multiples of the interval: the same grid after any restart),
    #: "first_trade" (the first price seen, rounded to the tick, as OpenSQT), or a price
    anchor: str = "aligned"
    #: post-only (GTX) orders; a level whose orders were refused -5022 this many times in a row
    #: falls back to GTC (OpenSQT: 3)
    post_only: bool = True
    post_only_fail_limit: Count = 3
    #: which exit-window test: "v3.3.1" (slot <= P + S*I, OpenSQT's release) or "upstream"
    #: (exit price <= P + S*I, one interval tighter)
    sell_window_rule: Literal["v3.3.1", "upstream"] = "v3.3.1"
    #: fee rate per side used by the startup profitability check (e.g. 0.0002)
    fee_rate: Decimal = Decimal(0)
    #: leverage the account uses for this symbol, and the most the startup check accepts
    leverage: Annotated[int, msgspec.Meta(ge=1, le=125)] = 1
    max_leverage: Annotated[int, msgspec.Meta(ge=1, le=125)] = 10
    #: on a stop command: cancel this grid's own orders (never the user's manual orders)
    cancel_on_exit: bool = True
    risk_control: RiskControlConfig = msgspec.field(default_factory=RiskControlConfig)
    #: the shared risk limits every strategy has (engine/risk): order and position caps,
    #: rate budgets, daily loss, drawdown, price-change and stale-data trips
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)

    def __post_init__(self) -> None:
        if self.price_interval <= 0:
            raise ValueError("price_interval must be positive (OpenSQT divides by it)")
        if self.order_quantity <= 0:
            raise ValueError("order_quantity must be a positive quote amount")
        if self.min_order_value < 0:
            raise ValueError("min_order_value must be >= 0")
        if self.fee_rate < 0 or self.fee_rate >= 1:
            raise ValueError("fee_rate must be in [0, 1)")
        if self.leverage > self.max_leverage:
            raise ValueError(
                f"leverage {self.leverage} is above max_leverage {self.max_leverage} "
                "(lower leverage or raise max_leverage)"
            )
        if self.cleanup_batch_size > self.order_cleanup_threshold:
            raise ValueError("cleanup_batch_size must not exceed order_cleanup_threshold")
        if self.anchor not in ("aligned", "first_trade"):
            try:
                price = Decimal(self.anchor)
            except ArithmeticError:
                raise ValueError(
                    f"anchor {self.anchor!r} must be aligned, first_trade or a price"
                ) from None
            if not price.is_finite() or price <= 0:
                raise ValueError("anchor price must be positive")

    @property
    def exit_window(self) -> int:
        return self.sell_window_size or self.buy_window_size
