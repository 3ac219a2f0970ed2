"""Account views: margin arithmetic over the simulator's wallets and positions (the simulator
holds the money), and the account endpoints (positionRisk, account, balance, leverage,
margin type, position mode, symbol config, income)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine import (
    PRICE_E8_SCALE,
    QUOTE_SCALE,
    Instrument,
)

from . import _wire as wire
from ._params import ApiError, _int, _missing
from ._state import ExchangeState

__all__ = ["AccountMixin"]

_MS = 1_000_000


class AccountMixin(ExchangeState):
    # ------------------------------------------------------------------------------------
    # account arithmetic (views; the simulator holds the money)

    def _mark_ticks(self, inst: int) -> int:
        m = self.sim.markets[inst]
        ins = m.ins
        if m.mark_e8:
            return (
                m.mark_e8 * 10**ins.price_scale.decimals // ins.price_scale.unit // PRICE_E8_SCALE
            )
        bid, ask = m.best()
        return m.last_price or ((bid + ask) // 2 if bid and ask else bid or ask)

    def _mark_e8(self, inst: int) -> int:
        m = self.sim.markets[inst]
        if m.mark_e8:
            return m.mark_e8
        ins = m.ins
        return (
            self._mark_ticks(inst)
            * ins.price_scale.unit
            * PRICE_E8_SCALE
            // (10**ins.price_scale.decimals)
        )

    def _unrealized(self, inst: int) -> int:
        pos = self.sim.positions[inst]
        if not pos.qty:
            return 0
        px = self._mark_ticks(inst)
        return pos.unrealized(px) * self.by_inst[inst].minor_per_ticklot if px else 0

    def _break_even_e8(self, inst: int) -> int:
        pos = self.sim.positions[inst]
        if not pos.qty:
            return 0
        entry = self.sim._entry_e8(inst)
        ins = self.by_inst[inst]
        qty = ins.qty_scale.to_decimal(abs(pos.qty))
        fee_per_unit = Decimal(self.fees_paid.get(inst, 0)) / QUOTE_SCALE / qty
        side = 1 if pos.qty > 0 else -1
        return max(0, entry + int(side * fee_per_unit * PRICE_E8_SCALE))

    def _notional(self, inst: int) -> int:
        pos = self.sim.positions[inst]
        return self.by_inst[inst].notional(self._mark_ticks(inst), pos.qty)

    def _lev(self, symbol: str) -> int:
        return self.leverage.get(symbol, self.config.leverage)

    def _order_margin(self, inst: int) -> int:
        ins = self.by_inst[inst]
        total = 0
        for o in self.sim.orders.values():
            if o.inst == inst and not o.reduce_only:
                total += ins.notional(o.price, o.remaining)
        return total // self._lev(ins.symbol)

    def _asset_totals(self, asset: str) -> dict[str, int]:
        mmr = Decimal(self.config.maint_margin_rate)
        pos_im = oo_im = maint = upnl = 0
        for inst, ins in self.by_inst.items():
            if ins.spec.margin_asset != asset:
                continue
            notional = abs(self._notional(inst))
            pos_im += notional // self._lev(ins.symbol)
            maint += int(notional * mmr)
            oo_im += self._order_margin(inst)
            upnl += self._unrealized(inst)
        wallet = self.sim.wallets.get(asset, 0)
        return {
            "wallet": wallet,
            "upnl": upnl,
            "pos_im": pos_im,
            "oo_im": oo_im,
            "maint": maint,
            "available": max(0, self.sim.available(asset)),
        }

    # ------------------------------------------------------------------------------------
    # handlers: one per endpoint, ``_h_<name>(params, now) -> JSON-able``
    # -- account -------------------------------------------------------------------------

    def _position_symbols(self, p: dict[str, str], *, only_active: bool) -> list[Instrument]:
        if p.get("symbol"):
            return [self._ins(p)]
        out = []
        for inst, ins in self.by_inst.items():
            if only_active and not (
                self.sim.positions[inst].qty
                or any(o.inst == inst for o in self.sim.orders.values())
            ):
                continue
            out.append(ins)
        return out

    def _h_position_risk_v2(self, p: dict[str, str], now: int) -> Any:
        rows = []
        for ins in self._position_symbols(p, only_active=False):
            inst = ins.inst
            pos = self.sim.positions[inst]
            rows.append(
                {
                    "entryPrice": wire.e8_text(self.sim._entry_e8(inst)),
                    "breakEvenPrice": wire.e8_text(self._break_even_e8(inst)),
                    "marginType": self.margin_type.get(ins.symbol, "cross"),
                    "isAutoAddMargin": "false",
                    "isolatedMargin": "0.00000000",
                    "leverage": str(self._lev(ins.symbol)),
                    "liquidationPrice": wire.e8_text(self.sim.liquidation_price_e8(inst)),
                    "markPrice": wire.e8_text(self._mark_e8(inst)),
                    "maxNotionalValue": "1000000000",
                    "positionAmt": ins.qty_text(pos.qty),
                    "notional": wire.money_text(self._notional(inst)),
                    "isolatedWallet": "0",
                    "symbol": ins.symbol,
                    "unRealizedProfit": wire.money_text(self._unrealized(inst)),
                    "positionSide": "BOTH",
                    "updateTime": now // _MS if pos.qty else 0,
                }
            )
        return rows

    def _h_position_risk_v3(self, p: dict[str, str], now: int) -> Any:
        rows = []
        mmr = Decimal(self.config.maint_margin_rate)
        for ins in self._position_symbols(p, only_active=True):
            inst = ins.inst
            pos = self.sim.positions[inst]
            notional = self._notional(inst)
            im = abs(notional) // self._lev(ins.symbol)
            oo = self._order_margin(inst)
            bid_n, ask_n = self._open_notional(inst)
            rows.append(
                {
                    "symbol": ins.symbol,
                    "positionSide": "BOTH",
                    "positionAmt": ins.qty_text(pos.qty),
                    "entryPrice": wire.e8_text(self.sim._entry_e8(inst)),
                    "breakEvenPrice": wire.e8_text(self._break_even_e8(inst)),
                    "markPrice": wire.e8_text(self._mark_e8(inst)),
                    "unRealizedProfit": wire.money_text(self._unrealized(inst)),
                    "liquidationPrice": wire.e8_text(self.sim.liquidation_price_e8(inst)),
                    "isolatedMargin": "0",
                    "notional": wire.money_text(notional),
                    "marginAsset": ins.spec.margin_asset,
                    "isolatedWallet": "0",
                    "initialMargin": wire.money_text(im + oo),
                    "maintMargin": wire.money_text(int(abs(notional) * mmr)),
                    "positionInitialMargin": wire.money_text(im),
                    "openOrderInitialMargin": wire.money_text(oo),
                    "adl": 0,
                    "bidNotional": bid_n,
                    "askNotional": ask_n,
                    "updateTime": now // _MS,
                }
            )
        return rows

    def _asset_rows(self, now: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
        rows = []
        totals: dict[str, int] = {}
        for asset in sorted(self.sim.wallets):
            t = self._asset_totals(asset)
            margin_balance = t["wallet"] + t["upnl"]
            rows.append(
                {
                    "asset": asset,
                    "walletBalance": wire.money_text(t["wallet"]),
                    "unrealizedProfit": wire.money_text(t["upnl"]),
                    "marginBalance": wire.money_text(margin_balance),
                    "maintMargin": wire.money_text(t["maint"]),
                    "initialMargin": wire.money_text(t["pos_im"] + t["oo_im"]),
                    "positionInitialMargin": wire.money_text(t["pos_im"]),
                    "openOrderInitialMargin": wire.money_text(t["oo_im"]),
                    "maxWithdrawAmount": wire.money_text(t["available"]),
                    "crossWalletBalance": wire.money_text(t["wallet"]),
                    "crossUnPnl": wire.money_text(t["upnl"]),
                    "availableBalance": wire.money_text(t["available"]),
                    "marginAvailable": True,
                    "updateTime": now // _MS,
                }
            )
            if asset == "USDT":  # single-asset mode: the totals are USDT's (ref/binance.md §1.8)
                totals = t
        return rows, totals

    def _account_positions(self, now: int, *, v3: bool) -> list[dict[str, Any]]:
        out = []
        for ins in self._position_symbols({}, only_active=v3):
            inst = ins.inst
            pos = self.sim.positions[inst]
            notional = self._notional(inst)
            im = abs(notional) // self._lev(ins.symbol)
            oo = self._order_margin(inst)
            mm = int(abs(notional) * Decimal(self.config.maint_margin_rate))
            if v3:
                out.append(
                    {
                        "symbol": ins.symbol,
                        "positionSide": "BOTH",
                        "positionAmt": ins.qty_text(pos.qty),
                        "unrealizedProfit": wire.money_text(self._unrealized(inst)),
                        "isolatedMargin": "0",
                        "notional": wire.money_text(notional),
                        "isolatedWallet": "0",
                        "initialMargin": wire.money_text(im + oo),
                        "maintMargin": wire.money_text(mm),
                        "updateTime": now // _MS,
                    }
                )
            else:
                bid_n, ask_n = self._open_notional(inst)
                out.append(
                    {
                        "symbol": ins.symbol,
                        "initialMargin": wire.money_text(im + oo),
                        "maintMargin": wire.money_text(mm),
                        "unrealizedProfit": wire.money_text(self._unrealized(inst)),
                        "positionInitialMargin": wire.money_text(im),
                        "openOrderInitialMargin": wire.money_text(oo),
                        "leverage": str(self._lev(ins.symbol)),
                        "isolated": False,
                        "entryPrice": wire.e8_text(self.sim._entry_e8(inst)),
                        "breakEvenPrice": wire.e8_text(self._break_even_e8(inst)),
                        "maxNotional": "1000000000",
                        "bidNotional": bid_n,
                        "askNotional": ask_n,
                        "positionSide": "BOTH",
                        "positionAmt": ins.qty_text(pos.qty),
                        "updateTime": now // _MS,
                    }
                )
        return out

    def _account(self, now: int, *, v3: bool) -> dict[str, Any]:
        assets, t = self._asset_rows(now)
        if not t:
            t = {"wallet": 0, "upnl": 0, "pos_im": 0, "oo_im": 0, "maint": 0, "available": 0}
        out: dict[str, Any] = {}
        if not v3:
            out.update(
                {
                    "feeTier": 0,
                    "canTrade": True,
                    "canDeposit": True,
                    "canWithdraw": True,
                    "tradeGroupId": -1,
                    "updateTime": 0,
                    "multiAssetsMargin": False,
                }
            )
        m = wire.money_text
        out.update(
            {
                "totalInitialMargin": m(t["pos_im"] + t["oo_im"]),
                "totalMaintMargin": m(t["maint"]),
                "totalWalletBalance": m(t["wallet"]),
                "totalUnrealizedProfit": m(t["upnl"]),
                "totalMarginBalance": m(t["wallet"] + t["upnl"]),
                "totalPositionInitialMargin": m(t["pos_im"]),
                "totalOpenOrderInitialMargin": m(t["oo_im"]),
                "totalCrossWalletBalance": m(t["wallet"]),
                "totalCrossUnPnl": m(t["upnl"]),
                "availableBalance": m(t["available"]),
                "maxWithdrawAmount": m(t["available"]),
                "assets": assets,
                "positions": self._account_positions(now, v3=v3),
            }
        )
        return out

    def _h_account_v2(self, p: dict[str, str], now: int) -> Any:
        return self._account(now, v3=False)

    def _h_account_v3(self, p: dict[str, str], now: int) -> Any:
        return self._account(now, v3=True)

    def _h_balance(self, p: dict[str, str], now: int) -> Any:
        out = []
        for asset in sorted(self.sim.wallets):
            t = self._asset_totals(asset)
            out.append(
                {
                    "accountAlias": "SgsR",
                    "asset": asset,
                    "balance": wire.money_text(t["wallet"]),
                    "crossWalletBalance": wire.money_text(t["wallet"]),
                    "crossUnPnl": wire.money_text(t["upnl"]),
                    "availableBalance": wire.money_text(t["available"]),
                    "maxWithdrawAmount": wire.money_text(t["available"]),
                    "marginAvailable": True,
                    "updateTime": now // _MS,
                }
            )
        return out

    def _h_account_config(self, p: dict[str, str], now: int) -> Any:
        return {
            "feeTier": 0,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "dualSidePosition": self.sim.config.hedge_mode,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
        }

    def _h_symbol_config(self, p: dict[str, str], now: int) -> Any:
        symbols = [self._ins(p)] if p.get("symbol") else list(self.by_inst.values())
        return [
            {
                "symbol": ins.symbol,
                "marginType": self.margin_type.get(ins.symbol, "CROSSED").upper(),
                "isAutoAddMargin": False,
                "leverage": self._lev(ins.symbol),
                "maxNotionalValue": "1000000000",
            }
            for ins in symbols
        ]

    def _h_leverage(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        if "leverage" not in p:
            raise _missing("leverage")
        lev = _int(p, "leverage", 0)
        if not 1 <= lev <= 125:
            raise ApiError(-4028, "Leverage is not valid")
        self.leverage[ins.symbol] = lev
        # the matching model has one leverage for its margin checks: the last one set
        self.sim.config.leverage = lev
        return {"leverage": lev, "maxNotionalValue": "1000000000", "symbol": ins.symbol}

    def _h_margin_type(self, p: dict[str, str], now: int) -> Any:
        ins = self._ins(p)
        mt = p.get("marginType", "")
        if mt not in ("ISOLATED", "CROSSED"):
            raise ApiError(-1130, "Data sent for parameter 'marginType' is not valid.")
        if self.margin_type.get(ins.symbol, "CROSSED") == mt:
            raise ApiError(-4046, "No need to change margin type.")
        if mt == "ISOLATED":
            # the matching model is cross margin only; refuse rather than pretend
            raise ApiError(-4047, "Margin type cannot be changed if there exists open orders.")
        self.margin_type[ins.symbol] = mt
        return {"code": 200, "msg": "success"}

    def _h_get_dual(self, p: dict[str, str], now: int) -> Any:
        return {"dualSidePosition": self.sim.config.hedge_mode}

    def _h_set_dual(self, p: dict[str, str], now: int) -> Any:
        want = p.get("dualSidePosition")
        if want not in ("true", "false"):
            raise _missing("dualSidePosition")
        if (want == "true") == self.sim.config.hedge_mode:
            raise ApiError(-4059, "No need to change position side.")
        if self.sim.orders:
            raise ApiError(-4067, "Position side cannot be changed if there exists open orders.")
        if any(pos.qty for pos in self.sim.positions.values()):
            raise ApiError(-4068, "Position side cannot be changed if there exists position.")
        self.sim.config.hedge_mode = want == "true"
        return {"code": 200, "msg": "success"}

    def _h_income(self, p: dict[str, str], now: int) -> Any:
        """Realized PnL, commissions and funding, oldest first (default: the last 7 days)."""
        ins = self._ins(p) if p.get("symbol") else None
        kind = p.get("incomeType")
        limit = _int(p, "limit", 100)
        page = _int(p, "page", 1)
        if not 1 <= limit <= 1000:
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        if page < 1:
            raise ApiError(-1130, "Data sent for parameter 'page' is not valid.")
        start = _int(p, "startTime", 0)
        end = _int(p, "endTime", 0)
        if not start and not end:
            start = now // _MS - 7 * 86_400_000
        rows = [
            r
            for r in self.income
            if (ins is None or r.inst == ins.inst)
            and (not kind or r.kind == kind)
            and (not start or r.time_ms >= start)
            and (not end or r.time_ms <= end)
        ]
        return [
            {
                "symbol": self.by_inst[r.inst].symbol,
                "incomeType": r.kind,
                "income": wire.money_text(r.amount),
                "asset": r.asset,
                "info": r.kind if r.kind != "COMMISSION" else "",
                "time": r.time_ms,
                "tranId": r.tran_id,
                "tradeId": r.trade_id,
            }
            for r in rows[(page - 1) * limit : page * limit]
        ]

    def _h_rate_limit_order(self, p: dict[str, str], now: int) -> Any:
        return [r for r in self._ws_limits() if r["rateLimitType"] == "ORDERS"]
