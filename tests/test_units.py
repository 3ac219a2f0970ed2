from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Scale
from engine._units import decimal_to_scaled, round_half_away, scaled_to_text


@pytest.mark.parametrize(
    ("unit", "text", "units"),
    [
        ("0.10", "61800.20", 618002),
        ("0.10", "61800.2", 618002),
        ("0.01", "2681.62", 268162),
        ("0.001", "0.014", 14),
        ("1", "85782", 85782),
        ("0.000001", "0.004123", 4123),
        ("0.5", "10.5", 21),
        ("0.010", "451.720", 45172),
        ("0.1", "28155.10000000", 281551),
    ],
)
def test_exact_conversion(unit, text, units):
    s = Scale(unit)
    assert s.to_units(text) == units
    assert Decimal(s.to_text(units)) == Decimal(text)


@pytest.mark.parametrize(
    ("unit", "text"),
    [("0.10", "61800.25"), ("0.5", "10.3"), ("0.01", "1.001"), ("1", "x"), ("0.1", "1_0")],
)
def test_off_grid_or_garbage_is_refused(unit, text):
    with pytest.raises(ValueError):
        Scale(unit).to_units(text)


def test_bad_units():
    for bad in ("0", "-0.1", "abc", "inf"):
        with pytest.raises(ValueError):
            Scale(bad)


@given(
    st.integers(-(10**15), 10**15),
    st.sampled_from(["0.1", "0.01", "0.001", "1", "0.5", "0.0001", "0.000001"]),
)
def test_text_round_trip(units, unit):
    s = Scale(unit)
    assert s.to_units(s.to_text(units)) == units
    assert Decimal(s.to_text(units)) == Decimal(units) * Decimal(unit)


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**9))
def test_round_half_away(n, d):
    exact = Decimal(n) / Decimal(d)
    got = round_half_away(n, d)
    assert abs(Decimal(got) - exact) <= Decimal("0.5")
    assert round_half_away(-n, d) == -got


def test_scaled_helpers():
    assert decimal_to_scaled("1.5", 2) == 150
    assert decimal_to_scaled("-0.25", 2) == -25
    assert decimal_to_scaled("1e-2", 2) == 1
    assert scaled_to_text(-5, 2) == "-0.05"
    with pytest.raises(ValueError):
        decimal_to_scaled("0.001", 2)
