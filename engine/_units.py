"""Exact conversion between Binance decimal strings and the engine's integers.

Theory of operation
-------------------
Inside the engine every price is an integer number of *ticks* and every quantity an integer
number of *lots* of the instrument's ``tickSize`` / ``stepSize``. Money is an integer number of
*minor units* (``QUOTE_SCALE`` per 1 USDT/USDC). Rates (fees, funding) are integers of
``RATE_SCALE`` per 1.0. Mark and index prices, which Binance publishes with more decimals than
the tick, are integers of ``PRICE_E8_SCALE`` per 1 quote unit.

``Scale`` converts a decimal string to a whole number of its unit and back, exactly: a value
that is not a multiple of the unit raises ``ValueError`` rather than being rounded, because a
silently rounded price is a wrong order. The string parser is hand-written (not ``Decimal``)
because the importer converts millions of level prices; results are cached per scale.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = [
    "PRICE_E8_SCALE",
    "QUOTE_SCALE",
    "RATE_SCALE",
    "Scale",
    "decimal_to_scaled",
    "round_half_away",
    "scaled_to_text",
]

#: minor units of quote money per 1 USDT / USDC (8 decimals, like Binance's commission field)
QUOTE_SCALE = 100_000_000
#: integer units per 1.0 of a rate: 0.0002 (2 bp) -> 20_000
RATE_SCALE = 100_000_000
#: integer units per 1 quote unit for mark/index prices (Binance prints 8 decimals)
PRICE_E8_SCALE = 100_000_000

_CACHE_LIMIT = 1 << 20


def _split_decimal(text: str) -> tuple[int, str, str]:
    """Split ``"-12.340"`` into (sign, "12", "340"); raises ValueError on anything else."""
    s = text
    if not s:
        raise ValueError("empty number")
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    whole, _, frac = s.partition(".")
    ok = (
        (whole or frac)
        and (not whole or whole.isdigit())
        and (not frac or frac.isdigit())
        and s.isascii()
    )
    if not ok:
        raise ValueError(f"not a plain decimal: {text!r}")
    return sign, whole or "0", frac


def decimal_to_scaled(text: str, decimals: int) -> int:
    """``"1.5", 2 -> 150``. Raises ValueError if ``text`` has non-zero digits beyond ``decimals``."""
    try:
        sign, whole, frac = _split_decimal(text)
    except ValueError:
        # scientific notation ("1e-5"); but not the spellings Decimal also takes ("1_000", " 1")
        if "_" in text or text != text.strip():
            raise ValueError(f"not a decimal number: {text!r}") from None
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {text!r}") from None
        if not d.is_finite():
            raise ValueError(f"not a finite number: {text!r}") from None
        scaled = d.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{text!r} has more than {decimals} decimals") from None
        return int(scaled)
    if len(frac) > decimals:
        if frac[decimals:].strip("0"):
            raise ValueError(f"{text!r} has more than {decimals} decimals")
        frac = frac[:decimals]
    pow10: int = 10**decimals
    return sign * (int(whole) * pow10 + (int(frac.ljust(decimals, "0")) if decimals else 0))


def scaled_to_text(value: int, decimals: int) -> str:
    """``150, 2 -> "1.50"`` (always exactly ``decimals`` decimals)."""
    if decimals == 0:
        return str(value)
    sign = "-" if value < 0 else ""
    digits = str(abs(value)).rjust(decimals + 1, "0")
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


def round_half_away(numerator: int, denominator: int) -> int:
    """Integer division rounding half away from zero (deterministic, sign-symmetric)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    q, r = divmod(abs(numerator), denominator)
    if 2 * r >= denominator:
        q += 1
    return q if numerator >= 0 else -q


class Scale:
    """One unit (a tick size or a step size) and exact conversions to and from it.

    >>> s = Scale("0.10")
    >>> s.to_units("61800.20")
    618002
    >>> s.to_text(618002)
    '61800.20'
    """

    __slots__ = ("_cache", "decimals", "text", "unit")

    def __init__(self, unit: str) -> None:
        try:
            d = Decimal(unit)
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {unit!r}") from None
        if not d.is_finite() or d <= 0:
            raise ValueError(f"a tick or step size must be positive, got {unit!r}")
        exponent = d.normalize().as_tuple().exponent
        assert isinstance(exponent, int)
        # Keep the decimals the exchange prints (e.g. "0.10" -> 2) so to_text round-trips
        # Binance's own formatting; at least as many as the unit needs.
        printed = d.as_tuple().exponent
        assert isinstance(printed, int)
        self.decimals: int = max(0, -exponent, -printed)
        #: the unit expressed in 10**-decimals, e.g. "0.10" -> 10
        self.unit: int = int(d.scaleb(self.decimals))
        self.text: str = unit
        self._cache: dict[str, int] = {}

    def to_units(self, text: str) -> int:
        """Whole number of units in ``text``; ValueError if it is not an exact multiple."""
        cache = self._cache
        v = cache.get(text)
        if v is not None:
            return v
        # fast path for the usual "12.345": plain ASCII digits with at most one dot
        body = text.replace(".", "", 1)
        if body.isdigit() and body.isascii():
            dot = text.find(".")
            frac = len(text) - dot - 1 if dot >= 0 else 0
            d = self.decimals
            if frac <= d:
                scaled = int(body) * 10 ** (d - frac)
            else:
                scaled, extra = divmod(int(body), 10 ** (frac - d))
                if extra:
                    raise ValueError(f"{text!r} has more than {d} decimals")
        else:
            scaled = decimal_to_scaled(text, self.decimals)
        q, r = divmod(scaled, self.unit)
        if r:
            raise ValueError(f"{text} is not a multiple of {self.text}")
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[text] = q
        return int(q)

    def to_units_floor(self, text: str) -> int:
        """Whole units in ``text`` rounded toward minus infinity (for quantities computed by us)."""
        return decimal_to_scaled_floor(text, self.decimals) // self.unit

    def to_text(self, units: int) -> str:
        return scaled_to_text(units * self.unit, self.decimals)

    def to_decimal(self, units: int) -> Decimal:
        return Decimal(units * self.unit).scaleb(-self.decimals)

    def __repr__(self) -> str:
        return f"Scale({self.text!r})"


def decimal_to_scaled_floor(text: str, decimals: int) -> int:
    """Like ``decimal_to_scaled`` but truncates extra decimals toward minus infinity."""
    d = Decimal(text).scaleb(decimals)
    return int(d.to_integral_value(rounding="ROUND_FLOOR"))
