"""Order entry: Binance order requests checked and translated to engine intents
(``PlaceOrder``, ``CancelOrder``, ``AmendOrder``, ``CancelAllOrders``); queries of orders and
the account's trades."""

from __future__ import annotations

from typing import Any

import msgspec

from engine import (
    AmendOrder,
    AmendRejected,
    CancelAllOrders,
    CancelOrder,
    CancelRejected,
    Instrument,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
)
from engine._context import CLIENT_ID_RE
from replay.sim import Reject, parse_price, parse_qty

from . import _wire as wire
from ._params import ApiError, _err, _int, _missing, _ws_text
from ._records import _CONDITIONAL, _SIDE_TEXT, _SIDES, _TIFS, OrderRec, rec_quote
from ._state import ExchangeState

__all__ = ["OrderEntryMixin"]

_MS = 1_000_000


_MARGIN_MSG = "The operation of cancel all open order is done."


class OrderEntryMixin(ExchangeState):
    # -- orders --------------------------------------------------------------------------

    def _parse_new(self, p: dict[str, str], now: int) -> tuple[PlaceOrder, OrderRec]:
        ins = self._ins(p)
        side = _SIDES.get(p.get("side", ""))
        if side is None:
            if not p.get("side"):
                raise _missing("side")
            raise ApiError(-1117, "Invalid side.")
        otype = p.get("type", "")
        if not otype:
            raise _missing("type")
        if otype in _CONDITIONAL:
            raise ApiError(
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API "
                "endpoints instead.",
            )
        if otype not in ("LIMIT", "MARKET"):
            raise ApiError(-1116, "Invalid orderType.")
        ps = p.get("positionSide", "BOTH")
        if ps not in ("BOTH", "LONG", "SHORT"):
            raise ApiError(-4006, "Invalid position side.")
        if ps != "BOTH" and not self.sim.config.hedge_mode:
            raise ApiError(-4061, "Order's position side does not match user's setting.")
        if "priceMatch" in p and p["priceMatch"] != "NONE":
            raise ApiError(-1106, "Parameter 'priceMatch' sent when not required.")
        reduce_text = p.get("reduceOnly", "false")
        if reduce_text not in ("true", "false"):
            raise ApiError(-1130, "Data sent for parameter 'reduceOnly' is not valid.")
        if "quantity" not in p:
            raise _missing("quantity")
        qty = parse_qty(ins, p["quantity"])
        market = otype == "MARKET"
        if market:
            if "price" in p:
                raise ApiError(-1106, "Parameter 'price' sent when not required.")
            if "timeInForce" in p:
                raise ApiError(-1106, "Parameter 'timeInForce' sent when not required.")
            price, tif_text = 0, "GTC"
        else:
            if "timeInForce" not in p:
                raise _missing("timeInForce")
            if "price" not in p:
                raise _missing("price")
            tif_text = p["timeInForce"]
            price = parse_price(ins, p["price"])
        tif = _TIFS.get(tif_text)
        if tif is None:
            raise ApiError(-1115, "Invalid timeInForce.")
        cid = p.get("newClientOrderId")
        if cid is None:
            cid = f"lx{self.next_client_seq:020d}"
            self.next_client_seq += 1
        elif not CLIENT_ID_RE.match(cid):
            raise ApiError(-4015, "Client order id is not valid.")
        resp = p.get("newOrderRespType", "ACK")
        if resp not in ("ACK", "RESULT"):
            raise ApiError(-1130, "Data sent for parameter 'newOrderRespType' is not valid.")
        stp = p.get("selfTradePreventionMode", "NONE")
        intent = PlaceOrder(
            ins.inst,
            cid,
            side,
            price,
            qty,
            tif,
            OrderType.MARKET if market else OrderType.LIMIT,
            reduce_text == "true",
        )
        rec = OrderRec(
            ins, cid, side, otype, tif_text, price, qty, reduce_text == "true", stp, now // _MS
        )
        return intent, rec

    def _place(self, p: dict[str, str], now: int) -> dict[str, Any]:
        intent, rec = self._parse_new(p, now)
        self._pending[intent.client_id] = rec
        answers = self._submit(now, intent)
        self._pending.pop(intent.client_id, None)
        for ev in answers:
            if type(ev) is OrderRejected:
                raise ApiError(ev.code, ev.message)
        if p.get("newOrderRespType") == "RESULT":
            return rec.to_json()
        return rec.ack

    def _h_new_order(self, p: dict[str, str], now: int) -> Any:
        return self._place(p, now)

    def _batch_items(self, p: dict[str, str], name: str) -> list[dict[str, str]]:
        raw = p.get(name)
        if not raw:
            raise _missing(name)
        try:
            items = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.") from None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        if not items or len(items) > 5:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        return [{k: _ws_text(v) for k, v in item.items()} for item in items]

    def _h_batch_new(self, p: dict[str, str], now: int) -> Any:
        out: list[Any] = []
        items = self._batch_items(p, "batchOrders")
        # batches (and their orders) that reached the matching engine (``status``)
        self.stats["batch_orders"] = self.stats.get("batch_orders", 0) + 1
        self.stats["batch_items"] = self.stats.get("batch_items", 0) + len(items)
        for item in items:
            try:
                out.append(self._place(item, now))
            except (ApiError, Reject) as e:
                out.append(_err(e))
        return out

    def _h_batch_amend(self, p: dict[str, str], now: int) -> Any:
        out: list[Any] = []
        for item in self._batch_items(p, "batchOrders"):
            try:
                out.append(self._h_amend_order(item, now))
            except (ApiError, Reject) as e:
                out.append(_err(e))
        return out

    def _find(self, p: dict[str, str], ins: Instrument, code: int, msg: str) -> OrderRec:
        if "orderId" in p:
            try:
                rec = self.orders.get(int(p["orderId"]))
            except ValueError:
                raise ApiError(-1100, "Illegal characters found in parameter 'orderId'.") from None
        elif "origClientOrderId" in p:
            oid = self.by_cid.get(p["origClientOrderId"])
            rec = self.orders.get(oid) if oid is not None else None
        else:
            raise ApiError(-1102, "Either orderId or origClientOrderId must be sent.")
        if rec is None or rec.ins is not ins:
            raise ApiError(code, msg)
        return rec

    def _h_cancel_order(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        rec = self._find(p, ins, -2011, "Unknown order sent.")
        if not rec.is_open:
            raise ApiError(-2011, "Unknown order sent.")
        for ev in self._submit(now, CancelOrder(ins.inst, rec.client_id)):
            if type(ev) is CancelRejected:
                raise ApiError(ev.code, ev.message)
        return rec.to_json()

    def _h_amend_order(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        rec = self._find(p, ins, -2013, "Order does not exist.")
        for name in ("side", "quantity", "price"):
            if name not in p:
                raise _missing(name)
        side = _SIDES.get(p["side"])
        if side is None:
            raise ApiError(-1117, "Invalid side.")
        qty = parse_qty(ins, p["quantity"])
        price = parse_price(ins, p["price"])
        if not rec.is_open:
            raise ApiError(-2013, "Order does not exist.")
        for ev in self._submit(now, AmendOrder(ins.inst, rec.client_id, side, price, qty)):
            if type(ev) is AmendRejected:
                raise ApiError(ev.code, ev.message)
        return rec.to_json()

    def _h_batch_cancel(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        if "orderIdList" in p:
            key, name = "orderId", "orderIdList"
        elif "origClientOrderIdList" in p:
            key, name = "origClientOrderId", "origClientOrderIdList"
        else:
            raise ApiError(-1102, "Either orderIdList or origClientOrderIdList must be sent.")
        try:
            ids = msgspec.json.decode(p[name])
        except msgspec.DecodeError:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.") from None
        want = int if key == "orderId" else str
        if not isinstance(ids, list) or not ids or len(ids) > 10:
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        if not all(type(i) is want for i in ids):
            raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
        self.stats["batch_cancels"] = self.stats.get("batch_cancels", 0) + 1
        self.stats["batch_cancel_items"] = self.stats.get("batch_cancel_items", 0) + len(ids)
        out: list[Any] = []
        for i in ids:
            try:
                out.append(self._h_cancel_order({"symbol": ins.symbol, key: str(i)}, now))
            except (ApiError, Reject) as e:
                out.append(_err(e))
        return out

    def _h_cancel_all(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        self._submit(now, CancelAllOrders(ins.inst, "allOpenOrders"))
        return {"code": 200, "msg": _MARGIN_MSG}

    def _h_countdown(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        if "countdownTime" not in p:
            raise _missing("countdownTime")
        ms = _int(p, "countdownTime", 0)
        if ms < 0:
            raise ApiError(-1130, "Data sent for parameter 'countdownTime' is not valid.")
        if ms == 0:
            self.countdowns.pop(ins.symbol, None)
        else:
            self.countdowns[ins.symbol] = (now + ms * _MS, ms)
        return {"symbol": ins.symbol, "countdownTime": str(ms)}

    def _h_query_order(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        return self._find(p, ins, -2013, "Order does not exist.").to_json(query=True)

    def _h_open_order(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        rec = self._find(p, ins, -2013, "Order does not exist.")
        if not rec.is_open:
            raise ApiError(-2013, "Order does not exist.")
        return rec.to_json(query=True)

    def _h_open_orders(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p) if p.get("symbol") else None
        out = []
        for o in self.sim.orders.values():
            rec = self.orders.get(o.order_id)
            if rec is not None and (ins is None or rec.ins is ins):
                out.append(rec.to_json(query=True))
        return out

    def _h_all_orders(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        limit = min(1000, _int(p, "limit", 500))
        start = _int(p, "orderId", 0)
        rows = [r for r in self.orders.values() if r.ins is ins and r.order_id >= start]
        return (
            [r.to_json(query=True) for r in rows[-limit:]]
            if not start
            else [r.to_json(query=True) for r in rows[:limit]]
        )

    def _h_user_trades(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        limit = min(1000, _int(p, "limit", 500))
        order_id = _int(p, "orderId", 0)
        from_id = _int(p, "fromId", 0)
        start = _int(p, "startTime", 0)
        end = _int(p, "endTime", 0)
        if from_id and (start or end):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        rows = [
            t
            for t in self.trades
            if t.inst == ins.inst
            and (not order_id or t.order_id == order_id)
            and t.trade_id >= from_id
            and (not start or t.time_ms >= start)
            and (not end or t.time_ms <= end)
        ]
        rows = rows[:limit] if from_id else rows[-limit:]
        out = []
        for t in rows:
            out.append(
                {
                    "symbol": ins.symbol,
                    "id": t.trade_id,
                    "orderId": t.order_id,
                    "side": _SIDE_TEXT[t.side],
                    "price": ins.price_text(t.price),
                    "qty": ins.qty_text(t.qty),
                    "realizedPnl": wire.money_text(t.realized),
                    "marginAsset": ins.spec.margin_asset,
                    "quoteQty": rec_quote(ins, ins.notional(t.price, t.qty)),
                    "commission": wire.money_text(t.fee),
                    "commissionAsset": t.fee_asset,
                    "time": t.time_ms,
                    "positionSide": "BOTH",
                    "buyer": t.side is Side.BUY,
                    "maker": t.maker,
                }
            )
        return out

    def _h_commission_rate(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        return {
            "symbol": ins.symbol,
            "makerCommissionRate": wire.rate_text(self.sim.maker_fee[ins.inst]),
            "takerCommissionRate": wire.rate_text(self.sim.taker_fee[ins.inst]),
            "rpiCommissionRate": wire.rate_text(self.sim.maker_fee[ins.inst]),
        }
