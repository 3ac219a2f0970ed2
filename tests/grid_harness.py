"""A grid in a bare engine, driven by hand-written exchange answers (ref/opensqt.md §8's Y0)."""

from __future__ import annotations

from typing import Any

import msgspec

from adapters.binance import builtin_instrument
from engine import Engine, load_engine_config
from engine._config import build_state
from engine._events import (
    AccountSnapshotReceived,
    BalanceRow,
    KlineUpdated,
    OpenOrderRow,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PositionRow,
    Side,
    TimerFired,
    TradePrinted,
)
from engine._intents import CancelOrder, PlaceOrder, RecordDecision, RequestSnapshot, ScheduleTimer
from engine.strategies.grid import Grid

from .helpers import Feeder

#: ref §8 baseline: ETHUSDT, I=2, Q=30, B=S=5, threshold 50, batch 20, min 20, anchor 3000
Y0: dict[str, Any] = {
    "kind": "grid",
    "symbol": "ETHUSDT",
    "price_interval": "2",
    "order_quantity": "30",
    "buy_window_size": 5,
    "sell_window_size": 5,
    "order_cleanup_threshold": 50,
    "cleanup_batch_size": 20,
    "min_order_value": "20",
    "margin_lock_duration_seconds": 20,
    "price_send_interval": 0,
    "anchor": "3000.00",
    "position_safety_check": 10,
}

E8 = 100_000_000


def px(text: str) -> int:
    """ETHUSDT price text -> ticks (0.01)."""
    return round(float(text) * 100)


def lots(text: str) -> int:
    """ETHUSDT quantity -> lots (0.001)."""
    return round(float(text) * 1000)


class GridHarness:
    def __init__(self, start: bool = True, **overrides: Any) -> None:
        cfg = load_engine_config({"strategy": {**Y0, **overrides}})
        self.feeder = Feeder(Engine(build_state(cfg)))
        self.feed = self.feeder.feed
        self.feed(builtin_instrument(0, "ETHUSDT"))
        self.feed(builtin_instrument(1, "BTCUSDT"))  # for the risk monitor's candles
        self.next_trade = 1
        self.next_order_id = 1000
        self.order_ids: dict[str, int] = {}
        if start:
            self.start()

    @property
    def grid(self) -> Grid:
        strategy = self.feeder.state.strategy
        assert isinstance(strategy, Grid)
        return strategy

    @property
    def state(self) -> Any:
        return self.feeder.state

    # -- market ------------------------------------------------------------------------------

    def trade(self, price: str) -> list[Any]:
        self.next_trade += 1
        return list(
            self.feed(TradePrinted(0, self.feeder.t, self.next_trade, px(price), 1, Side.BUY))
        )

    def start(self, price: str = "3000.00", balance: str = "10000", **snapshot: Any) -> list[Any]:
        """First price, then the startup account snapshot the grid asks for."""
        out = self.trade(price)
        assert any(isinstance(i, RequestSnapshot) for i in out), out
        return self.snapshot(balance=balance, **snapshot)

    def snapshot(
        self,
        balance: str = "10000",
        position: int = 0,
        entry: str = "0",
        orders: list[OpenOrderRow] | None = None,
    ) -> list[Any]:
        minor = int(float(balance) * E8)
        positions = [PositionRow(0, position, int(float(entry) * E8))] if position else []
        ev = AccountSnapshotReceived(
            self.feeder.t, [BalanceRow("USDT", minor, minor)], positions, orders or []
        )
        return list(self.feed(ev))

    def kline(
        self, symbol_inst: int, open_s: int, close: str, volume: str, closed: bool = True
    ) -> list[Any]:
        c = px(close)
        ev = KlineUpdated(
            symbol_inst,
            self.feeder.t,
            "1m",
            open_s * 10**9,
            (open_s + 60) * 10**9 - 1,
            c,
            c,
            c,
            c,
            lots(volume),
            0,
            1,
            0,
            closed,
        )
        return list(self.feed(ev))

    def fire_timers(self) -> list[Any]:
        out: list[Any] = []
        for tid in sorted(self.state.timers):
            out += self.feed(TimerFired(tid, self.feeder.t))
        return out

    # -- our orders --------------------------------------------------------------------------

    def open(self) -> dict[str, Any]:
        return {o.client_id: o for o in self.state.open_orders.values()}

    def find(self, side: Side, price: str) -> Any:
        hits = [
            o for o in self.state.open_orders.values() if o.side is side and o.price == px(price)
        ]
        assert len(hits) == 1, (side, price, hits)
        return hits[0]

    def ack(self, order: Any) -> list[Any]:
        oid = self.order_ids.setdefault(order.client_id, self.next_order_id)
        self.next_order_id += 1
        return list(self.feed(OrderAccepted(0, order.client_id, oid, self.feeder.t)))

    def ack_all(self, intents: list[Any]) -> None:
        for p in places(intents):
            self.ack(self.state.order(p.client_id))

    def fill(self, order: Any, qty: int | None = None, price: int | None = None) -> list[Any]:
        q = order.qty - order.filled if qty is None else qty
        self.next_trade += 1
        ev = OrderFilled(
            0,
            order.client_id,
            self.order_ids.get(order.client_id, 0),
            self.next_trade,
            order.side,
            order.price if price is None else price,
            q,
            order.filled + q,
            order.qty,
            0,
            "USDT",
            True,
            self.feeder.t,
        )
        return list(self.feed(ev))

    def cancel_event(self, order: Any) -> list[Any]:
        return list(
            self.feed(
                OrderCanceled(
                    0, order.client_id, self.order_ids.get(order.client_id, 0), self.feeder.t
                )
            )
        )

    def reject(self, client_id: str, code: int) -> list[Any]:
        return list(self.feed(OrderRejected(0, client_id, code, "refused", self.feeder.t)))


def places(intents: list[Any]) -> list[PlaceOrder]:
    return [i for i in intents if isinstance(i, PlaceOrder)]


def cancels(intents: list[Any]) -> list[CancelOrder]:
    return [i for i in intents if isinstance(i, CancelOrder)]


def decisions(intents: list[Any], action: str | None = None) -> list[RecordDecision]:
    return [
        i
        for i in intents
        if isinstance(i, RecordDecision) and (action is None or i.action == action)
    ]


def summary(intents: list[Any]) -> list[tuple[str, str, int, bool]]:
    """(side, price text, lots, reduce_only) of each placement, in order."""
    return [(p.side.name, f"{p.price / 100:.2f}", p.qty, p.reduce_only) for p in places(intents)]


def timer_intents(intents: list[Any]) -> list[ScheduleTimer]:
    return [i for i in intents if isinstance(i, ScheduleTimer)]


def decode(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
