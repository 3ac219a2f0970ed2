"""What Binance shows of orders and trades that the matching model does not keep: order
records (ids, times, status, average price) and the account's trades."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from engine import (
    QUOTE_SCALE,
    Instrument,
    Side,
    TimeInForce,
)
from engine._units import scaled_to_text

__all__ = ["IncomeRow", "OrderRec", "TradeRec", "rec_quote"]

_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_SIDE_TEXT = {Side.BUY: "BUY", Side.SELL: "SELL"}
_TIFS = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    "GTX": TimeInForce.GTX,
}
_CONDITIONAL = {
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
}


class OrderRec:
    """One order as Binance shows it (the simulator keeps the matching state)."""

    __slots__ = (
        "ack",
        "client_id",
        "cum_quote",
        "executed",
        "ins",
        "order_id",
        "order_type",
        "price",
        "qty",
        "reduce_only",
        "side",
        "status",
        "stp",
        "tif",
        "time_ms",
        "update_ms",
    )

    def __init__(
        self,
        ins: Instrument,
        client_id: str,
        side: Side,
        order_type: str,
        tif: str,
        price: int,
        qty: int,
        reduce_only: bool,
        stp: str,
        now_ms: int,
    ) -> None:
        self.ins = ins
        self.client_id = client_id
        self.order_id = 0
        self.side = side
        self.order_type = order_type
        self.tif = tif
        self.price = price
        self.qty = qty
        self.reduce_only = reduce_only
        self.stp = stp
        self.executed = 0
        self.cum_quote = 0  # minor units
        self.status = "NEW"
        self.time_ms = now_ms
        self.update_ms = now_ms
        self.ack: dict[str, Any] = {}

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def quote_text(self, minor: int) -> str:
        d = min(8, self.ins.price_scale.decimals + self.ins.qty_scale.decimals)
        return scaled_to_text(minor // 10 ** (8 - d), d)

    def avg_text(self) -> str:
        d = self.ins.price_scale.decimals + 3
        if not self.executed:
            return scaled_to_text(0, d)
        qty = self.ins.qty_scale.to_decimal(self.executed)
        avg = Decimal(self.cum_quote) / QUOTE_SCALE / qty
        return f"{avg:.{d}f}"

    def to_json(self, *, query: bool = False) -> dict[str, Any]:
        ins = self.ins
        out: dict[str, Any] = {
            "orderId": self.order_id,
            "symbol": ins.symbol,
            "status": self.status,
            "clientOrderId": self.client_id,
            "price": ins.price_text(self.price),
            "avgPrice": self.avg_text(),
            "origQty": ins.qty_text(self.qty),
            "executedQty": ins.qty_text(self.executed),
        }
        if not query:
            out["cumQty"] = ins.qty_text(self.executed)
        out.update(
            {
                "cumQuote": self.quote_text(self.cum_quote),
                "timeInForce": self.tif,
                "type": self.order_type,
                "reduceOnly": self.reduce_only,
                "closePosition": False,
                "side": _SIDE_TEXT[self.side],
                "positionSide": "BOTH",
                "stopPrice": ins.price_text(0),
                "workingType": "CONTRACT_PRICE",
                "priceProtect": False,
                "origType": self.order_type,
                "priceMatch": "NONE",
                "selfTradePreventionMode": self.stp,
                "goodTillDate": 0,
            }
        )
        if query:
            out["time"] = self.time_ms
        out["updateTime"] = self.update_ms
        return out


class TradeRec(msgspec.Struct, array_like=True, gc=False):
    inst: int
    trade_id: int
    order_id: int
    side: Side
    price: int
    qty: int
    realized: int  # minor units
    fee: int
    fee_asset: str
    time_ms: int
    maker: bool


class IncomeRow(msgspec.Struct, array_like=True, gc=False):
    """One ``/fapi/v1/income`` row: REALIZED_PNL, COMMISSION or FUNDING_FEE."""

    inst: int
    kind: str
    amount: int  # minor units, signed (a fee paid is negative)
    asset: str
    time_ms: int
    tran_id: int
    trade_id: str  # "" for funding


def rec_quote(ins: Instrument, minor: int) -> str:
    d = min(8, ins.price_scale.decimals + ins.qty_scale.decimals)
    return scaled_to_text(minor // 10 ** (8 - d), d)
