"""GLFT and Avellaneda–Stoikov formulas against hand-computed values; estimator convergence on
synthetic arrivals with known A, k and σ."""

from __future__ import annotations

import math
import random

import pytest

from engine.strategies.quoting import (
    ArrivalEstimator,
    VolatilityEstimator,
    as_quotes,
    glft_coefficients,
    glft_quotes,
)


def test_glft_coefficients_by_hand():
    # A = 1/s, k = 1/tick, γ = ξ = 0.1, Δ = 1:
    #   c1 = (1/0.1)·ln(1 + 0.1/1) = 10·ln 1.1 = 10 × 0.0953101798 = 0.953101798
    #   c2 = √((0.1/(2·1·1·1))·(1.1)^(1/0.1 + 1)) = √(0.05 × 1.1^11) = √(0.05 × 2.853116706)
    #      = √0.1426558353 = 0.377698074
    c1, c2 = glft_coefficients(1.0, 1.0, 0.1)
    assert c1 == pytest.approx(0.953101798, abs=1e-9)
    assert c2 == pytest.approx(0.377698074, abs=1e-9)


def test_glft_quotes_by_hand():
    # σ = 2 ticks/√s, q = +1 order size, fair = 100 ticks, c1/c2 as above:
    #   half = c1 + (1/2)·σ·c2 = 0.953101798 + 0.377698074 = 1.330799872
    #   skew = σ·c2 = 0.755396149
    #   bid = 100 − (half + skew·q) = 100 − 2.086196021 = 97.913803979
    #   ask = 100 + (half − skew·q) = 100 + 0.575403723 = 100.575403723
    c1, c2 = glft_coefficients(1.0, 1.0, 0.1)
    bid, ask, half, skew = glft_quotes(100.0, 1.0, 2.0, c1, c2)
    assert half == pytest.approx(1.330799872, abs=1e-8)
    assert skew == pytest.approx(0.755396149, abs=1e-8)
    assert bid == pytest.approx(97.913803979, abs=1e-8)
    assert ask == pytest.approx(100.575403723, abs=1e-8)
    # short one unit: the same quotes mirrored around the fair price
    bid_s, ask_s, _, _ = glft_quotes(100.0, -1.0, 2.0, c1, c2)
    assert 100 - bid_s == pytest.approx(ask - 100)
    # hftbacktest's adj1/adj2 scale the half spread and the skew
    _, _, half2, skew2 = glft_quotes(100.0, 1.0, 2.0, c1, c2, spread_mult=2.0, skew_mult=0.5)
    assert (half2, skew2) == pytest.approx((2 * half, skew / 2))


def test_glft_xi_to_zero_limit():
    # ξ → 0: c1 → 1/k, c2 → √(γ·e/(2AΔk)); A = 2, k = 0.5, γ = 0.1: c1 = 2, c2 = √(0.1e/2)
    c1, c2 = glft_coefficients(2.0, 0.5, 0.1, xi=0.0)
    assert c1 == 2.0
    assert c2 == pytest.approx(math.sqrt(0.1 * math.e / 2.0))
    near = glft_coefficients(2.0, 0.5, 0.1, xi=1e-9)
    assert near == pytest.approx((c1, c2), rel=1e-6)


def test_glft_rejects_nonsense():
    with pytest.raises(ValueError):
        glft_coefficients(0.0, 1.0, 0.1)
    with pytest.raises(ValueError):
        glft_coefficients(1.0, -1.0, 0.1)


def test_avellaneda_stoikov_by_hand_with_sigma_squared():
    # s = 100, q = 2, σ = 2, γ = 0.1, k = 1.5, τ = 10:
    #   γσ²τ = 0.1 × 4 × 10 = 4
    #   r = s − q·γσ²τ = 100 − 8 = 92
    #   spread = 4 + (2/0.1)·ln(1 + 0.1/1.5) = 4 + 20 × 0.0645385211 = 5.290770423
    #   bid = 92 − 2.645385211, ask = 92 + 2.645385211
    bid, ask, r, spread = as_quotes(100.0, 2.0, 2.0, 0.1, 1.5, 10.0)
    assert r == pytest.approx(92.0)
    assert spread == pytest.approx(5.290770423, abs=1e-8)
    assert bid == pytest.approx(89.354614789, abs=1e-8)
    assert ask == pytest.approx(94.645385211, abs=1e-8)
    # Hummingbot's unsquared σ would give r = 100 − 2·0.1·2·10 = 96: not what we compute
    assert r != pytest.approx(96.0)
    # flat inventory: reservation = mid, symmetric quotes
    b0, a0, r0, _ = as_quotes(100.0, 0.0, 2.0, 0.1, 1.5, 10.0)
    assert r0 == 100.0 and 100 - b0 == pytest.approx(a0 - 100)


def _max_depths(rng: random.Random, a: float, k: float, dt: float, steps: int):
    """Per step, the deepest arrival of a Poisson flow whose intensity beyond δ is A·e^(−kδ):
    P(D >= δ) = 1 − exp(−A·dt·e^(−kδ)); drawn by inverting that distribution."""
    p_none = math.exp(-a * dt)
    for _ in range(steps):
        u = rng.random()
        if u <= p_none:
            yield None
        else:
            yield -math.log(-math.log(u) / (a * dt)) / k


@pytest.mark.parametrize(
    ("a", "k", "seed"),
    [(2.0, 0.3, 1), (0.8, 0.05, 2), (5.0, 1.0, 3), (1.3, 0.03, 4)],
)
def test_arrival_estimator_converges(a, k, seed):
    """One hour of 100 ms steps; fit over depths up to where λ has fallen ~e^-4.
    Tolerances achieved: A within 15%, k within 10%."""
    dt = 0.1
    steps = 36_000
    est = ArrivalEstimator(dt, steps, max_depth=4.0 / k, grid=min(0.5, 0.25 / k))
    for d in _max_depths(random.Random(seed), a, k, dt, steps):
        est.record(d)
    assert est.fit()
    assert est.a == pytest.approx(a, rel=0.15)
    assert est.k == pytest.approx(k, rel=0.10)


def test_arrival_estimator_window_forgets():
    est = ArrivalEstimator(0.1, 1000, max_depth=20.0)
    rng = random.Random(5)
    for d in _max_depths(rng, 50.0, 0.2, 0.1, 1000):  # a busy market...
        est.record(d)
    assert est.fit()
    busy = est.a
    for d in _max_depths(rng, 1.0, 0.2, 0.1, 1000):  # ...then a calm one fills the window
        est.record(d)
    assert est.fit()
    assert est.a < busy / 5
    assert est.a == pytest.approx(1.0, rel=0.3)
    assert len(est) == 1000


def test_arrival_estimator_needs_points():
    est = ArrivalEstimator(0.1, 100, max_depth=10.0)
    for _ in range(100):
        est.record(None)
    assert not est.fit()
    assert est.a == 0.0


@pytest.mark.parametrize(("sigma", "seed"), [(5.0, 1), (80.0, 2), (0.7, 3)])
def test_volatility_estimator_converges(sigma, seed):
    """10 minutes of 100 ms mid changes ~ N(0, σ²·dt): σ within 5%."""
    rng = random.Random(seed)
    dt = 0.1
    est = VolatilityEstimator(dt, 6000)
    for _ in range(6000):
        est.record(rng.gauss(0.0, sigma * math.sqrt(dt)))
    assert est.fit()
    assert est.sigma == pytest.approx(sigma, rel=0.05)
