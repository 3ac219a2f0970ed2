"""Intents -> Binance order request parameters (pure; shared by REST and the WS API)."""

from __future__ import annotations

from engine import AmendOrder, Instrument, OrderType, PlaceOrder, Side, TimeInForce

__all__ = ["amend_params", "place_params"]

_SIDE = {Side.BUY: "BUY", Side.SELL: "SELL"}
_TIF = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
    TimeInForce.GTX: "GTX",
}


def place_params(p: PlaceOrder, ins: Instrument) -> list[tuple[str, object]]:
    """``POST /fapi/v1/order`` parameters, decimals printed exactly on the tick/step grid."""
    params: list[tuple[str, object]] = [
        ("symbol", ins.symbol),
        ("side", _SIDE[p.side]),
    ]
    if p.order_type is OrderType.MARKET:
        params.append(("type", "MARKET"))
        params.append(("quantity", ins.qty_text(p.qty)))
    else:
        params += [
            ("type", "LIMIT"),
            ("timeInForce", _TIF[p.tif]),
            ("quantity", ins.qty_text(p.qty)),
            ("price", ins.price_text(p.price)),
        ]
    if p.reduce_only:
        params.append(("reduceOnly", "true"))
    params.append(("newClientOrderId", p.client_id))
    return params


def amend_params(a: AmendOrder, ins: Instrument) -> list[tuple[str, object]]:
    """``PUT /fapi/v1/order`` parameters (both price and quantity are required)."""
    return [
        ("symbol", ins.symbol),
        ("origClientOrderId", a.client_id),
        ("side", _SIDE[a.side]),
        ("quantity", ins.qty_text(a.qty)),
        ("price", ins.price_text(a.price)),
    ]
