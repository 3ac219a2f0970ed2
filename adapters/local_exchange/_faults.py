"""Fault injection: what can go wrong on Binance, on demand (control API) or at random (flags).

Theory of operation
-------------------
A ``Faults`` object is shared by the exchange core (order faults, 429/418, depth gaps,
listenKey expiry) and the server (WebSocket drops, message delays and drops, clock skew,
requests that never get an answer). Each fault is either *armed* for the next N occurrences
(control API, tests: deterministic) or happens with a probability drawn from a seeded
generator (CLI flags: ``--fault-orders 0.02:unknown``). The faults and what a client sees:

============== ==================================================================================
order faults   on POST/PUT/DELETE ``/fapi/v1/order``, ``batchOrders`` and WS-API ``order.*``:
               ``unknown``      503 ``Unknown error, please check your request...`` (-1000); the
                                request may or may not have been executed (``placed``)
               ``timeout``      no answer at all: the connection stays silent until the client
                                gives up (REST) / no response frame (WS API); may be executed
               ``error500``     500 -1000 ``Request occur unknown error.``; may be executed
               ``unavailable``  503 ``Service Unavailable.``; never executed
               ``internal``     503 -1001 ``Internal error; unable to process your request.``;
                                never executed
               ``throttled``    503 -1008 ``Request throttled by system-level protection...``;
                                never executed
               ``placed`` = ``yes`` | ``no`` | ``random`` (seeded) decides the "may" cases;
               ``some``: a batch has only its first half executed (as real batches are
               processed item by item); a single order is executed
rate limits    the next N requests answer 429 -1003; ``ban(seconds)`` answers 418 until then
depth gap      the next N depth diffs are not sent (the matching model still applies them), so
               the next one's ``pu`` does not chain: a client must resync
listenKey      expire it now: ``listenKeyExpired`` is pushed, keepalive answers -1125
clock skew     the server clock runs ``skew_ms`` ahead (negative: behind) of the real one
WS drop        every WebSocket connection of a kind (``market``, ``user``, ``ws-api``, ``all``)
               is cut without a close frame
delays/drops   messages of a kind are held ``delay_ms`` or the next N are dropped
============== ==================================================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["ORDER_FAULT_MODES", "Faults", "OrderFault"]

ORDER_FAULT_MODES = ("unknown", "timeout", "error500", "unavailable", "internal", "throttled")
#: modes where the request never reaches the matching engine
_NEVER_PLACED = frozenset({"unavailable", "internal", "throttled"})
WS_KINDS = ("market", "user", "ws-api", "all")


@dataclass
class OrderFault:
    mode: str
    placed: bool
    #: a batch is only partly executed (its first half)
    part: bool = False

    @property
    def executes(self) -> bool:
        return self.placed and self.mode not in _NEVER_PLACED


@dataclass
class Faults:
    seed: int = 1
    #: armed order faults: (mode, placed) for each of the next requests
    armed_orders: list[tuple[str, str]] = field(default_factory=list)
    #: random order faults: probability per order request, mode, placed
    order_rate: float = 0.0
    order_rate_mode: str = "unknown"
    order_rate_placed: str = "random"
    force_429: int = 0
    ban_until_ns: int = 0
    depth_gaps: int = 0
    depth_gap_rate: float = 0.0
    skew_ms: int = 0
    #: kind -> ms each message of that kind is held back
    delay_ms: dict[str, float] = field(default_factory=dict)
    #: kind -> how many of the next messages are dropped
    drop_messages: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # -- arming (control API) ------------------------------------------------------------

    def fail_orders(self, mode: str, count: int = 1, placed: str = "random") -> None:
        if mode not in ORDER_FAULT_MODES:
            raise ValueError(f"order fault {mode!r}: use one of {', '.join(ORDER_FAULT_MODES)}")
        if placed not in ("yes", "no", "random", "some"):
            raise ValueError(f"placed {placed!r}: use yes, no, random or some")
        self.armed_orders += [(mode, placed)] * count

    def gap_depth(self, count: int = 1) -> None:
        self.depth_gaps += count

    def clear(self) -> None:
        self.armed_orders.clear()
        self.order_rate = 0.0
        self.force_429 = 0
        self.ban_until_ns = 0
        self.depth_gaps = 0
        self.depth_gap_rate = 0.0
        self.skew_ms = 0
        self.delay_ms.clear()
        self.drop_messages.clear()

    # -- drawing (the exchange) ----------------------------------------------------------

    def next_order_fault(self) -> OrderFault | None:
        if self.armed_orders:
            mode, placed = self.armed_orders.pop(0)
        elif self.order_rate and self.rng.random() < self.order_rate:
            mode, placed = self.order_rate_mode, self.order_rate_placed
        else:
            return None
        self._count("order:" + mode)
        yes = placed in ("yes", "some") or (placed == "random" and self.rng.random() < 0.5)
        return OrderFault(mode, yes, part=placed == "some")

    def take_429(self) -> bool:
        if self.force_429 > 0:
            self.force_429 -= 1
            self._count("429")
            return True
        return False

    def take_depth_gap(self) -> bool:
        if self.depth_gaps > 0:
            self.depth_gaps -= 1
            self._count("depth_gap")
            return True
        if self.depth_gap_rate and self.rng.random() < self.depth_gap_rate:
            self._count("depth_gap")
            return True
        return False

    def take_drop(self, kind: str) -> bool:
        n = self.drop_messages.get(kind, 0)
        if n > 0:
            self.drop_messages[kind] = n - 1
            self._count("drop:" + kind)
            return True
        return False
