"""The ``risk:`` section of a strategy config. Every limit is off when left at 0."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

__all__ = ["RiskConfig"]

_Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


class RiskConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # -- can_place: checked before every order --------------------------------------------
    #: largest notional of one order, quote asset (USDT/USDC)
    max_order_notional: Decimal = Decimal(0)
    #: largest |position| per symbol in the base asset, counting every open order on the same
    #: side as if it filled (worst case)
    max_position: Decimal = Decimal(0)
    #: largest |position notional| per symbol, quote asset, worst case as above
    max_position_notional: Decimal = Decimal(0)
    #: largest sum of |position notional| over every symbol of the account, quote asset
    max_account_notional: Decimal = Decimal(0)
    #: open orders per symbol (Binance allows 200)
    max_open_orders: _Count = 0
    #: a limit price may be at most this fraction away from the mark (or the mid), e.g. 0.02
    price_band: Decimal = Decimal(0)
    #: new orders per rolling 10 s / 1 min (Binance: 300 / 1200 per account); 0 = no budget
    max_orders_per_10s: _Count = 240
    max_orders_per_minute: _Count = 960
    #: cancels per rolling 10 s / 1 min; beyond it new orders wait (requotes cost cancels)
    max_cancels_per_10s: _Count = 0
    max_cancels_per_minute: _Count = 0

    # -- should_panic_stop: checked at every fill, mark price and risk check ---------------
    #: loss since the start of the UTC day (realized + unrealized - fees + funding), quote
    #: asset; trips cancel-all (+ flatten); resumes on the next UTC day or `risk_reset`
    max_daily_loss: Decimal = Decimal(0)
    #: fall of equity from its peak, quote asset; resumes only on the operator's `risk_reset`
    max_drawdown: Decimal = Decimal(0)
    #: |price change| over ``price_window_s`` as a fraction, e.g. 0.01; trips cancel-all and
    #: a pause of ``pause_s`` that ends once the change is back within the limit
    max_price_change: Decimal = Decimal(0)
    price_window_s: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 60
    #: no market data for this many seconds trips cancel-all until data flows again
    stale_data_s: Decimal = Decimal(0)
    #: a stream ("market", "user", ...) reported down trips cancel-all until it is back up
    halt_on_disconnect: bool = True
    #: loss and drawdown trips also close the position with a reduce-only market order
    flatten_on_loss: bool = True
    #: the shortest pause after a price-change trip, seconds
    pause_s: Annotated[int, msgspec.Meta(ge=0, le=86_400)] = 60
    #: how often the risk service checks time-based limits (stale data, price change), ms
    check_interval_ms: Annotated[int, msgspec.Meta(ge=10, le=3_600_000)] = 1000
    #: a repeated denial (same symbol, side, reason) is journaled at most this often, ms;
    #: the next record says how many were folded into it
    deny_log_interval_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)] = 1000

    def __post_init__(self) -> None:
        for name in (
            "max_order_notional",
            "max_position",
            "max_position_notional",
            "max_account_notional",
            "price_band",
            "max_daily_loss",
            "max_drawdown",
            "max_price_change",
            "stale_data_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"risk.{name} must be >= 0 (0 = off)")
        if self.price_band >= 1:
            raise ValueError("risk.price_band is a fraction (0.02 = 2%), must be below 1")
        if self.max_price_change >= 1:
            raise ValueError("risk.max_price_change is a fraction (0.01 = 1%), must be below 1")
