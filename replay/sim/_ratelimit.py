"""Binance's request-weight and order-count limits, with 429 then 418.

Fixed windows aligned on exchange time, as Binance counts them: request weight per minute per
IP, orders per 10 s and per minute per account. Breaking a limit answers 429 (-1003 for
weight, -1015 for orders) and the request does nothing. Going on after 429s in the same
minute gets the IP banned: 418 -1003 for ``ban_seconds``, doubling with each ban.
"""

from __future__ import annotations

from engine import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Intent,
    PlaceOrder,
    RequestSnapshot,
    SnapshotKind,
)

from ._config import RateLimitConfig
from ._rules import Reject

__all__ = ["RateLimiter", "request_cost"]

_S = 1_000_000_000


def request_cost(intent: Intent) -> tuple[int, int]:
    """(IP weight, order count) of the REST call that carries ``intent`` (ref/binance.md §1.3)."""
    kind = type(intent)
    if kind is PlaceOrder or kind is AmendOrder:
        return 0, 1
    if kind is CancelOrder or kind is CancelAllOrders:
        return 1, 0
    if kind is RequestSnapshot:
        return (
            (20, 0) if intent.kind is SnapshotKind.BOOK else (11, 0)
        )  # depth 1000 / orders+positions+balance
    return 0, 0


class RateLimiter:
    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self.window_10s = -1
        self.window_1m = -1
        self.orders_10s = 0
        self.orders_1m = 0
        self.weight_1m = 0
        self.violations = 0
        self.bans = 0
        self.banned_until = 0

    def _roll(self, t: int) -> None:
        w10 = t // (10 * _S)
        if w10 != self.window_10s:
            self.window_10s = w10
            self.orders_10s = 0
        w60 = t // (60 * _S)
        if w60 != self.window_1m:
            self.window_1m = w60
            self.orders_1m = 0
            self.weight_1m = 0
            self.violations = 0

    def check(self, t: int, intent: Intent) -> None:
        """Count ``intent`` at exchange time ``t``; raises Reject (429/418) if over a limit."""
        weight, orders = request_cost(intent)
        self.charge(t, weight, orders)

    def charge(self, t: int, weight: int, orders: int, orders_1m: int | None = None) -> None:
        """Count a request of ``weight`` and ``orders`` (``orders_1m`` on the minute window when
        it differs: a batch of 5 counts 5 per 10 s but 1 per minute); raises Reject (429/418)
        if over a limit, having counted nothing."""
        if orders_1m is None:
            orders_1m = orders
        cfg = self.config
        if not cfg.enabled:
            return
        if t < self.banned_until:
            until_ms = self.banned_until // 1_000_000
            raise Reject(
                -1003,
                f"Way too many requests; IP(127.0.0.1) banned until {until_ms}. "
                "Please use the websocket for live updates to avoid bans.",
                418,
            )
        self._roll(t)
        if weight and self.weight_1m + weight > cfg.weight_per_minute:
            self._violation(t)
            raise Reject(
                -1003,
                f"Too many requests; current limit of IP(127.0.0.1) request weight per minute is "
                f"{cfg.weight_per_minute}. Please use WebSocket Streams for live updates to avoid polling "
                "the API.",
                429,
            )
        if orders or orders_1m:
            if self.orders_10s + orders > cfg.orders_per_10s:
                self._violation(t)
                raise Reject(
                    -1015,
                    f"Too many new orders; current limit is {cfg.orders_per_10s} orders per "
                    "10 SECONDS.",
                    429,
                )
            if self.orders_1m + orders_1m > cfg.orders_per_minute:
                self._violation(t)
                raise Reject(
                    -1015,
                    f"Too many new orders; current limit is {cfg.orders_per_minute} orders per "
                    "1 MINUTE.",
                    429,
                )
        self.weight_1m += weight
        self.orders_10s += orders
        self.orders_1m += orders_1m

    def _violation(self, t: int) -> None:
        self.violations += 1
        if self.violations >= self.config.ban_after_429s:
            self.banned_until = t + self.config.ban_seconds * _S * (2**self.bans)
            self.bans += 1
            self.violations = 0

    def headers(self) -> dict[str, str]:
        """What Binance reports back: X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-10S/-1M."""
        return {
            "X-MBX-USED-WEIGHT-1M": str(self.weight_1m),
            "X-MBX-ORDER-COUNT-10S": str(self.orders_10s),
            "X-MBX-ORDER-COUNT-1M": str(self.orders_1m),
        }
