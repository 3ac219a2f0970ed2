"""The matching model's answers -> order records and user data stream messages
(ORDER_TRADE_UPDATE, TRADE_LITE, ACCOUNT_UPDATE, listenKeyExpired); the listenKey endpoints."""

from __future__ import annotations

from typing import Any

from engine import (
    AccountUpdated,
    Event,
    FundingSettled,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    Side,
)

from . import _wire as wire
from ._params import ApiError
from ._records import _SIDE_TEXT, IncomeRow, OrderRec, TradeRec, rec_quote
from ._state import ExchangeState

__all__ = ["UserStreamMixin"]

_MS = 1_000_000


class UserStreamMixin(ExchangeState):
    # ------------------------------------------------------------------------------------
    # the matching model's answers -> order records and user-stream messages

    def _absorb(self, now: int, answers: list[Event]) -> None:
        journal = self._journal
        #: funding settled in this batch, per asset: the ``bc`` of the ACCOUNT_UPDATE after it
        funding_bc: dict[str, int] = {}
        for ev in answers:
            if journal is not None:
                journal(now, ev, None)
            kind = type(ev)
            if kind is OrderFilled:
                self._on_fill(now, ev)
            elif kind is AccountUpdated:
                self._on_account(now, ev, funding_bc)
            elif kind is OrderAccepted:
                rec = self._pending.pop(ev.client_id, None)
                if rec is None:
                    continue
                rec.order_id = ev.order_id
                rec.update_ms = now // _MS
                self.orders[ev.order_id] = rec
                self.by_cid[ev.client_id] = ev.order_id
                rec.ack = rec.to_json()
                self._order_update(now, rec, "NEW")
            elif kind is OrderCanceled:
                rec = self.orders.get(ev.order_id)
                if rec is not None:
                    rec.status = "CANCELED"
                    rec.update_ms = now // _MS
                    self._order_update(now, rec, "CANCELED")
            elif kind is OrderExpired:
                rec = self.orders.get(ev.order_id)
                if rec is not None:
                    rec.status = "EXPIRED"
                    rec.update_ms = now // _MS
                    self._order_update(now, rec, "EXPIRED", expiry_reason=ev.reason)
            elif kind is OrderAmended:
                rec = self.orders.get(ev.order_id)
                if rec is not None:
                    rec.price, rec.qty = ev.price, ev.qty
                    rec.update_ms = now // _MS
                    self._order_update(now, rec, "AMENDMENT")
            elif kind is FundingSettled:
                # the AccountUpdated(FUNDING_FEE) that follows carries it to the stream
                funding_bc[ev.asset] = funding_bc.get(ev.asset, 0) + ev.amount
                self._income(ev.inst, "FUNDING_FEE", ev.amount, ev.asset, ev.ts_ns // _MS, "")

    def _on_fill(self, now: int, ev: OrderFilled) -> None:
        rec = self.orders.get(ev.order_id)
        if rec is None:
            return
        ins = rec.ins
        realized = (
            self.shadow[ev.inst].apply_fill(ev.side, ev.price, ev.qty) * ins.minor_per_ticklot
        )
        rec.executed = ev.cum_qty
        rec.cum_quote += ins.notional(ev.price, ev.qty)
        rec.status = "FILLED" if ev.cum_qty >= ev.order_qty else "PARTIALLY_FILLED"
        rec.update_ms = now // _MS
        self.fees_paid[ev.inst] = self.fees_paid.get(ev.inst, 0) + ev.fee
        tid = str(ev.trade_id)
        if realized:
            self._income(ev.inst, "REALIZED_PNL", realized, ins.spec.margin_asset, now // _MS, tid)
        if ev.fee:
            self._income(ev.inst, "COMMISSION", -ev.fee, ev.fee_asset, now // _MS, tid)
        self.trades.append(
            TradeRec(
                ev.inst,
                ev.trade_id,
                ev.order_id,
                ev.side,
                ev.price,
                ev.qty,
                realized,
                ev.fee,
                ev.fee_asset,
                now // _MS,
                ev.is_maker,
            )
        )
        ms = now // _MS
        self.user_out.append(
            {
                "e": "TRADE_LITE",
                "E": ms,
                "T": ms,
                "s": ins.symbol,
                "q": ins.qty_text(rec.qty),
                "p": ins.price_text(rec.price),
                "m": ev.is_maker,
                "c": rec.client_id,
                "S": _SIDE_TEXT[rec.side],
                "L": ins.price_text(ev.price),
                "l": ins.qty_text(ev.qty),
                "t": ev.trade_id,
                "i": rec.order_id,
            }
        )
        self._order_update(now, rec, "TRADE", fill=ev, realized=realized)

    def _income(self, inst: int, kind: str, amount: int, asset: str, ms: int, tid: str) -> None:
        self.income.append(IncomeRow(inst, kind, amount, asset, ms, self.next_tran_id, tid))
        self.next_tran_id += 1

    def _order_update(
        self,
        now: int,
        rec: OrderRec,
        exec_type: str,
        *,
        fill: OrderFilled | None = None,
        realized: int = 0,
        expiry_reason: int = 0,
    ) -> None:
        ins = rec.ins
        ms = now // _MS
        bids, asks = self._open_notional(rec.ins.inst)
        self.user_out.append(
            {
                "e": "ORDER_TRADE_UPDATE",
                "E": ms,
                "T": ms,
                "o": {
                    "s": ins.symbol,
                    "c": rec.client_id,
                    "S": _SIDE_TEXT[rec.side],
                    "o": rec.order_type,
                    "f": rec.tif,
                    "q": ins.qty_text(rec.qty),
                    "p": ins.price_text(rec.price),
                    "ap": rec.avg_text(),
                    "sp": "0",
                    "x": exec_type,
                    "X": rec.status,
                    "i": rec.order_id,
                    "l": ins.qty_text(fill.qty if fill else 0),
                    "z": ins.qty_text(rec.executed),
                    "L": ins.price_text(fill.price if fill else 0),
                    "N": fill.fee_asset if fill else None,
                    "n": wire.money_text(fill.fee) if fill else None,
                    "T": ms,
                    "t": fill.trade_id if fill else 0,
                    "b": bids,
                    "a": asks,
                    "m": fill.is_maker if fill else False,
                    "R": rec.reduce_only,
                    "wt": "CONTRACT_PRICE",
                    "ot": rec.order_type,
                    "ps": "BOTH",
                    "cp": False,
                    "AP": None,
                    "cr": None,
                    "pP": False,
                    "si": 0,
                    "ss": 0,
                    "rp": wire.money_text(realized),
                    "V": rec.stp,
                    "pm": "NONE",
                    "gtd": 0,
                    "W": rec.time_ms,
                    "er": str(expiry_reason),
                },
            }
        )

    def _open_notional(self, inst: int) -> tuple[str, str]:
        ins = self.by_inst[inst]
        bids = asks = 0
        for o in self.sim.orders.values():
            if o.inst == inst:
                n = ins.notional(o.price, o.remaining)
                if o.side is Side.BUY:
                    bids += n
                else:
                    asks += n
        return rec_quote(ins, bids), rec_quote(ins, asks)

    def _on_account(self, now: int, ev: AccountUpdated, funding_bc: dict[str, int]) -> None:
        """ACCOUNT_UPDATE. Funding comes as Binance sends it for cross margin (the only margin
        the matching model has): ``B`` with the amount as ``bc`` and no ``P`` (the sim's
        funding update has no position rows), so a client learns the symbol from the income
        history (ref/binance.md §4.4)."""
        ms = now // _MS
        positions = []
        for row in ev.positions:
            ins = self.by_inst[row.inst]
            positions.append(
                {
                    "s": ins.symbol,
                    "pa": ins.qty_text(row.qty),
                    "ep": wire.e8_text(row.entry_e8),
                    "bep": wire.e8_text(self._break_even_e8(row.inst)),
                    "cr": wire.money_text(self.shadow[row.inst].realized * ins.minor_per_ticklot),
                    "up": wire.money_text(self._unrealized(row.inst)),
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                }
            )
        balances = [
            {
                "a": b.asset,
                "wb": wire.money_text(b.wallet),
                "cw": wire.money_text(b.wallet),
                "bc": wire.money_text(
                    funding_bc.pop(b.asset, 0) if ev.reason == "FUNDING_FEE" else 0
                ),
            }
            for b in ev.balances
        ]
        self.user_out.append(
            {
                "e": "ACCOUNT_UPDATE",
                "E": ms,
                "T": ms,
                "a": {"m": ev.reason, "B": balances, "P": positions},
            }
        )

    def expire_listen_key(self, now: int) -> None:
        if not self.listen_key:
            return
        self.user_out.append(
            {"e": "listenKeyExpired", "E": now // _MS, "listenKey": self.listen_key}
        )
        self.listen_key = ""

    # -- listenKey -----------------------------------------------------------------------

    def _h_listen_key_new(self, p: dict[str, str], now: int) -> Any:
        if not self.listen_key:
            alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            self.listen_key = "".join(self.rng.choice(alphabet) for _ in range(64))
        self.listen_key_expiry_ns = now + self.listen_key_ttl_ns
        return {"listenKey": self.listen_key}

    def _h_listen_key_keepalive(self, p: dict[str, str], now: int) -> Any:
        given = p.get("listenKey")
        if not self.listen_key or (given and given != self.listen_key):
            raise ApiError(-1125, "This listenKey does not exist.")
        self.listen_key_expiry_ns = now + self.listen_key_ttl_ns
        return {"listenKey": self.listen_key}

    def _h_listen_key_close(self, p: dict[str, str], now: int) -> Any:
        self.listen_key = ""
        return {}


# ----------------------------------------------------------------------------------------
