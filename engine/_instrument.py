"""Runtime view of an instrument: its scales and the integer rules derived from them."""

from __future__ import annotations

from ._errors import InvalidEvent
from ._events import InstrumentLoaded
from ._units import QUOTE_SCALE, Scale

__all__ = ["Instrument"]


class Instrument:
    """An ``InstrumentLoaded`` plus the conversions the engine needs.

    ``minor_per_ticklot`` is the quote money, in minor units, of one tick times one lot: the
    notional of ``price`` ticks and ``qty`` lots is ``price * qty * minor_per_ticklot``. It
    must be a whole number, which holds for every Binance USDⓈ-M symbol (tick × step ≥ 1e-8).
    """

    __slots__ = ("minor_per_ticklot", "price_scale", "qty_scale", "spec")

    def __init__(self, spec: InstrumentLoaded) -> None:
        self.spec = spec
        try:
            self.price_scale = Scale(spec.tick_size)
            self.qty_scale = Scale(spec.step_size)
        except ValueError as e:
            raise InvalidEvent("bad_instrument", f"{spec.symbol}: {e}") from None
        tick_minor = self.price_scale.unit * QUOTE_SCALE
        step = self.qty_scale
        num = tick_minor * step.unit
        den = 10**self.price_scale.decimals * 10**step.decimals
        if num % den:
            raise InvalidEvent(
                "bad_instrument",
                f"{spec.symbol}: tick {spec.tick_size} x step {spec.step_size} is finer than "
                "the 1e-8 money unit",
            )
        self.minor_per_ticklot: int = num // den

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    @property
    def inst(self) -> int:
        return self.spec.inst

    def notional(self, price: int, qty: int) -> int:
        """Quote minor units of ``qty`` lots at ``price`` ticks."""
        return price * qty * self.minor_per_ticklot

    def price_text(self, ticks: int) -> str:
        return self.price_scale.to_text(ticks)

    def qty_text(self, lots: int) -> str:
        return self.qty_scale.to_text(lots)
