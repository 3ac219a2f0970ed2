"""The strategy interface: hooks the reducer calls after its own bookkeeping.

A strategy is pure like the reducer: it reads the context, keeps its own state on itself, and
acts only through the context (which turns actions into intents). Every hook is optional.
Hooks run after the engine has updated books, orders and positions for the event, so a
strategy always sees a consistent state.
"""

from __future__ import annotations

from typing import Any, ClassVar

from engine._context import Context
from engine._events import (
    AccountSnapshotReceived,
    AccountUpdated,
    ConnectionChanged,
    FundingSettled,
    KlineUpdated,
    MarkPriceUpdated,
    OperatorCommanded,
    OrderFilled,
    TradePrinted,
)
from engine._instrument import Instrument
from engine._state import Order

__all__ = ["Strategy"]


class Strategy:
    #: the ``kind`` value of this strategy's config section
    kind: ClassVar[str] = ""
    #: True when the strategy compares its orders with account snapshots itself (the grid);
    #: otherwise the engine settles lost orders and cancels orphans (engine/_reconcile.py)
    reconciles_orders: ClassVar[bool] = False

    def on_instrument(self, ctx: Context, instrument: Instrument) -> None:
        """An instrument's rules became known (resolve symbols and sizes here)."""

    def on_top(self, ctx: Context, inst: int) -> None:
        """Best bid or ask of ``inst`` changed (bookTicker or the synced L2 book)."""

    def on_book(self, ctx: Context, inst: int) -> None:
        """The L2 book of ``inst`` changed (a diff or snapshot applied)."""

    def on_trade(self, ctx: Context, ev: TradePrinted) -> None:
        """A public trade printed."""

    def on_mark(self, ctx: Context, ev: MarkPriceUpdated) -> None:
        """Mark price / funding rate update."""

    def on_kline(self, ctx: Context, ev: KlineUpdated) -> None:
        """A candle update (check ``ev.closed``)."""

    def on_order(self, ctx: Context, order: Order) -> None:
        """One of our orders changed status (accepted, rejected, cancelled, expired, ...)."""

    def on_fill(self, ctx: Context, order: Order | None, ev: OrderFilled) -> None:
        """An execution; ``order`` is None when the order is not one we know."""

    def on_timer(self, ctx: Context, key: str) -> None:
        """A timer this strategy scheduled fired."""

    def on_account(self, ctx: Context, ev: AccountSnapshotReceived) -> None:
        """A reconciliation snapshot arrived."""

    def on_account_update(self, ctx: Context, ev: AccountUpdated) -> None:
        """Balances/positions changed (after a fill, funding, a transfer)."""

    def on_funding(self, ctx: Context, ev: FundingSettled) -> None:
        """Funding was paid or received."""

    def on_connection(self, ctx: Context, ev: ConnectionChanged) -> None:
        """A connection went up or down."""

    def on_operator(self, ctx: Context, ev: OperatorCommanded) -> None:
        """An operator command arrived."""

    def candles_needed(self) -> list[tuple[str, str, int]]:
        """(symbol, interval, closed candles) the strategy needs before it can decide: a live
        run subscribes those candles and loads that much history at start."""
        return []

    def describe(self) -> dict[str, Any]:
        """The strategy's state for ``replay --show`` (plain data, deterministic order)."""
        return {}
