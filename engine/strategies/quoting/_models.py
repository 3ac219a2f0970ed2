"""Optimal-quoting formulas and their online estimators (floats: these are indicators).

Units everywhere: prices and distances in **ticks**, time in **seconds**, inventory ``q`` in
**order sizes** (hftbacktest's convention, Δ = 1), so γ is per tick of risk and the
formulas carry no hidden scale.

* ``glft_coefficients`` / ``glft_quotes`` — Guéant–Lehalle–Fernandez-Tapia, the stationary
  (T → ∞) approximation that suits a perpetual (``ref/peers.md`` §4.2):
  c1 = (1/(ξΔ))·ln(1 + ξΔ/k), c2 = √((γ/(2AΔk))·(1 + ξΔ/k)^(k/(ξΔ) + 1)),
  half spread = c1 + (Δ/2)·σ·c2, skew = σ·c2,
  bid = fair − (half + skew·q), ask = fair + (half − skew·q). ξ → 0 gives c1 = 1/k,
  c2 = √(γ·e/(2AΔk)).
* ``as_quotes`` — Avellaneda–Stoikov (2008) with **σ²** as in the paper (Hummingbot's
  unsquared σ is its issue #5677): r = s − q·γ·σ²·τ, spread = γ·σ²·τ + (2/γ)·ln(1 + γ/k).
  A perpetual has no end time, so τ is a fixed rolling horizon.
* ``ArrivalEstimator`` — A and k of λ(δ) = A·e^(−kδ) from the deepest trade arrival depth of
  each step (hftbacktest's method, §4.2), over a rolling window of steps. It differs in two
  places, both deliberate: depths are in ticks, not half-tick indices; and the per-step
  probability p(δ) that an arrival reached δ is turned into an intensity with
  λ = −ln(1 − p)/Δt (exact for Poisson arrivals) rather than count/window, which
  underestimates λ near the mid whenever A·Δt is not small. Then ln λ = ln A − k·δ is fitted
  by ordinary least squares over the grid δ = g, 2g, ... up to ``max_depth`` ticks.
* ``VolatilityEstimator`` — σ in ticks/√s: the population standard deviation of the mid
  change per step over the window, divided by √Δt.

Both estimators keep their window incrementally (a histogram, running sums) so an update is
O(1) and a refit O(grid).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = [
    "ArrivalEstimator",
    "VolatilityEstimator",
    "as_quotes",
    "glft_coefficients",
    "glft_quotes",
]


def glft_coefficients(
    a: float, k: float, gamma: float, xi: float | None = None, delta: float = 1.0
) -> tuple[float, float]:
    """(c1, c2) of GLFT for arrival rate ``a`` (1/s), decay ``k`` (1/tick), risk aversion γ."""
    if a <= 0 or k <= 0 or gamma <= 0:
        raise ValueError("A, k and gamma must be positive")
    x = gamma if xi is None else xi
    if x == 0:
        return 1.0 / k, math.sqrt(gamma * math.e / (2.0 * a * delta * k))
    xd = x * delta
    c1 = math.log1p(xd / k) / xd
    c2 = math.sqrt(gamma / (2.0 * a * delta * k) * (1.0 + xd / k) ** (k / xd + 1.0))
    return c1, c2


def glft_quotes(
    fair: float,
    q: float,
    sigma: float,
    c1: float,
    c2: float,
    delta: float = 1.0,
    spread_mult: float = 1.0,
    skew_mult: float = 1.0,
) -> tuple[float, float, float, float]:
    """(bid, ask, half_spread, skew) in ticks; ``*_mult`` are hftbacktest's adj1 / adj2."""
    half = (c1 + 0.5 * delta * sigma * c2) * spread_mult
    skew = sigma * c2 * skew_mult
    return fair - (half + skew * q), fair + (half - skew * q), half, skew


def as_quotes(
    mid: float, q: float, sigma: float, gamma: float, k: float, tau: float
) -> tuple[float, float, float, float]:
    """(bid, ask, reservation, spread) of Avellaneda–Stoikov, σ² as in the paper."""
    if gamma <= 0 or k <= 0:
        raise ValueError("gamma and k must be positive")
    risk = gamma * sigma * sigma * tau
    r = mid - q * risk
    spread = risk + (2.0 / gamma) * math.log1p(gamma / k)
    return r - spread / 2.0, r + spread / 2.0, r, spread


class ArrivalEstimator:
    """λ(δ) = A·e^(−kδ) from one deepest arrival depth (ticks, or None) per step."""

    __slots__ = ("a", "buckets", "depths", "grid", "hist", "k", "points", "step_s", "window")

    def __init__(
        self, step_s: float, window_steps: int, max_depth: float, grid: float = 0.5
    ) -> None:
        self.step_s = step_s
        self.window = window_steps
        self.grid = grid
        self.buckets = max(3, int(max_depth / grid))
        # hist[b]: steps whose depth d has floor(d / grid) == b (b capped at buckets)
        self.hist = [0] * (self.buckets + 1)
        self.depths: deque[int] = deque()  # bucket per step, -1 = no arrival
        self.a = 0.0
        self.k = 0.0
        self.points = 0  # grid points used by the last fit

    def __len__(self) -> int:
        return len(self.depths)

    def record(self, depth: float | None) -> None:
        b = -1
        if depth is not None and depth >= self.grid:
            b = min(int(depth / self.grid), self.buckets)
            self.hist[b] += 1
        self.depths.append(b)
        if len(self.depths) > self.window:
            old = self.depths.popleft()
            if old >= 0:
                self.hist[old] -= 1

    def fit(self) -> bool:
        """Refit A, k on the window; False (estimates kept) when there are < 3 usable points."""
        n = len(self.depths)
        if not n:
            return False
        hist = self.hist
        g = self.grid
        # count_j = steps with depth >= j*g, for j = buckets .. 1
        xs: list[float] = []
        ys: list[float] = []
        count = 0
        tail: list[tuple[float, int]] = []
        for j in range(self.buckets, 0, -1):
            count += hist[j]
            tail.append((j * g, count))
        tail.reverse()
        for x, c in tail:
            if c <= 0:
                break  # deeper points have no arrivals: log undefined
            p = c / n
            if p >= 1.0:
                p = 1.0 - 0.5 / n  # every step reached it: the best a window can say
            lam = -math.log1p(-p) / self.step_s
            xs.append(x)
            ys.append(math.log(lam))
        m = len(xs)
        if m < 3:
            return False
        mx = sum(xs) / m
        my = sum(ys) / m
        sxx = sum((x - mx) ** 2 for x in xs)
        sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
        slope = sxy / sxx
        a = math.exp(my - slope * mx)
        k = -slope
        if not (k > 0 and math.isfinite(k) and a > 0 and math.isfinite(a)):
            return False
        self.a = a
        self.k = k
        self.points = m
        return True


class VolatilityEstimator:
    """σ (ticks/√s) from the mid change of each step over a rolling window."""

    __slots__ = ("changes", "sigma", "step_s", "window")

    def __init__(self, step_s: float, window_steps: int) -> None:
        self.step_s = step_s
        self.window = window_steps
        self.changes: deque[float] = deque()
        self.sigma = 0.0

    def __len__(self) -> int:
        return len(self.changes)

    def record(self, change: float) -> None:
        self.changes.append(change)
        if len(self.changes) > self.window:
            self.changes.popleft()

    def fit(self) -> bool:
        n = len(self.changes)
        if n < 2:
            return False
        mean = math.fsum(self.changes) / n
        var = math.fsum((c - mean) ** 2 for c in self.changes) / n
        self.sigma = math.sqrt(var / self.step_s)
        return True
