"""Binance USDⓈ-M order rules with Binance's own error codes and messages.

Shared by the simulated exchange and the local Binance-compatible exchange, so both refuse
exactly the same orders the same way. Codes and message texts follow Binance's
error-code page (see ref/binance.md §7); Binance keeps the codes stable, the texts vary.
"""

from __future__ import annotations

from engine import RATE_SCALE, Instrument, Side
from engine._units import scaled_to_text

__all__ = ["Reject", "check_price_band", "check_static", "parse_price", "parse_qty"]


class Reject(Exception):
    """An order refused by the exchange: Binance code, message and HTTP status."""

    def __init__(self, code: int, message: str, http_status: int = 400) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


def parse_price(ins: Instrument, text: str) -> int:
    """A price string from a request -> ticks, refused the way Binance refuses it."""
    try:
        value = ins.price_scale.to_units(text)
    except ValueError:
        try:
            ins.price_scale.to_units_floor(text)
        except Exception:
            raise Reject(
                -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."
            ) from None
        raise Reject(-4014, "Price not increased by tick size.") from None
    if value < 0:
        raise Reject(-4001, "Price less than 0.")
    return value


def parse_qty(ins: Instrument, text: str) -> int:
    try:
        value = ins.qty_scale.to_units(text)
    except ValueError:
        try:
            ins.qty_scale.to_units_floor(text)
        except Exception:
            raise Reject(
                -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."
            ) from None
        raise Reject(-4023, "Quantity not increased by step size.") from None
    if value < 0:
        raise Reject(-4003, "Quantity less than zero.")
    return value


def check_static(
    ins: Instrument, price: int, qty: int, *, market: bool, reduce_only: bool, mark_price: int
) -> None:
    """PRICE_FILTER, LOT_SIZE / MARKET_LOT_SIZE and MIN_NOTIONAL, in Binance's order.

    ``mark_price`` (ticks, 0 if unknown) values a MARKET order for MIN_NOTIONAL.
    """
    spec = ins.spec
    if qty <= 0:
        raise Reject(-4003, "Quantity less than or equal to zero.")
    if not market:
        if price <= 0:
            raise Reject(-4001, "Price less than or equal to zero.")
        if spec.min_price and price < spec.min_price:
            raise Reject(-4013, "Price less than min price.")
        if spec.max_price and price > spec.max_price:
            raise Reject(-4002, "Price greater than max price.")
    if qty < spec.min_qty:
        raise Reject(-4004, "Quantity less than min quantity.")
    max_qty = (spec.market_max_qty or spec.max_qty) if market else spec.max_qty
    if max_qty and qty > max_qty:
        raise Reject(-4005, "Quantity greater than max quantity.")
    if spec.min_notional and not reduce_only:
        value_price = price if not market else mark_price
        if value_price and ins.notional(value_price, qty) < spec.min_notional:
            limit = scaled_to_text(spec.min_notional, 8).rstrip("0").rstrip(".")
            raise Reject(
                -4164,
                f"Order's notional must be no smaller than {limit} (unless you choose reduce only).",
            )


def check_price_band(ins: Instrument, side: Side, price: int, mark_e8: int) -> None:
    """PERCENT_PRICE against the mark price: a buy above mark x up, a sell below mark x down."""
    spec = ins.spec
    if not mark_e8 or not spec.percent_up:
        return
    # price in quote units = price * tick; compare price * tick * 1e8 * RATE_SCALE vs mark_e8 * mult
    tick_e8 = ins.price_scale.unit * 10**8 // 10**ins.price_scale.decimals
    value = price * tick_e8 * RATE_SCALE
    if side is Side.BUY and value > mark_e8 * spec.percent_up:
        cap = mark_e8 * spec.percent_up // RATE_SCALE // tick_e8
        raise Reject(-4016, f"Limit price can't be higher than {ins.price_text(cap)}.")
    if side is Side.SELL and spec.percent_down and value < mark_e8 * spec.percent_down:
        floor = -(-mark_e8 * spec.percent_down // RATE_SCALE // tick_e8)
        raise Reject(-4024, f"Limit price can't be lower than {ins.price_text(floor)}.")
