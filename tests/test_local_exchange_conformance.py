"""Conformance: every payload kind of ../shared/data/binance-fixtures against what the local
exchange emits for the same request or stream, key sets and value types diffed recursively.

Rules of the diff (and why):
* every key of the fixture must be in ours, except the keys listed in MISSING (fields of
  features the local exchange does not have, e.g. trailing-stop parameters);
* ours may have more keys only when listed in EXTRA (fields Binance added after the fixture
  was captured, documented in ref/binance.md);
* types must agree; ``null`` on either side matches anything (Binance sends null for absent
  values, e.g. ``N``/``n`` of an order update without a fill);
* the ccxt files were transcribed by ccxt with integers turned into strings (``"orderId":
  "664082074"``); for them an integer matches a string of digits.
* lists of objects: each fixture element is compared with our first element of the same
  ``filterType`` (exchangeInfo filters) or with our first element.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio_websocket

from adapters.local_exchange._testing import exchange, recv_json, recv_until

from .conftest import DATA

FIX = DATA / "binance-fixtures"

#: fixture file -> our payload kind (key of the dict built by ``_collect``)
PRODUCED = {
    "nautilus_py_futures/http_futures_market_exchange_info.json": "exchangeInfo",
    "cryptofeed_fapi/exchangeInfo_fapi_2021-07-22_BTCUSDT_only.json": "exchangeInfo.symbol",
    "nautilus_py_futures/http_futures_market_depth.json": "depth",
    "cryptofeed_fapi/depth_snapshot_limit1000_SUSHIUSDT_2021-07-22.json": "depth",
    "nautilus_py_futures/http_futures_market_book_ticker.json": "bookTicker",
    "nautilus_py_futures/http_futures_market_premium_index.json": "premiumIndex",
    "nautilus_py_futures/http_futures_wallet_commission_rate_btcusdt.json": "commissionRate",
    "nautilus_py_futures/http_futures_wallet_commission_rate_ethusdt.json": "commissionRate",
    "nautilus_py_futures/http_futures_account_trades.json": "userTrades",
    "ccxt_binance_static/fapi_v1_userTrades_response_taker_buy.json": "userTrades",
    "nautilus_py_futures/http_futures_account_orders.json": "openOrders",
    "ccxt_binance_static/fapi_v1_openOrder_response_new_limit_gtx_postonly.json": "openOrder",
    "ccxt_binance_static/fapi_v1_batchOrders_response_new_limit_gtc.json": "batchOrders",
    "nautilus_py_futures/http_futures_account_positions_one_way.json": "positionRisk.v2",
    "ccxt_binance_static/fapi_positionRisk_response_one_way_long.json": "positionRisk.v3",
    "ccxt_binance_static/fapi_account_response_usdt_only_no_positions.json": "account.v2",
    "nautilus_py_futures/http_futures_account_position_side_dual.json": "positionSide.dual",
    "nautilus_py_futures/http_futures_account_symbol_config.json": "symbolConfig",
    "nautilus_py_futures/ws_futures_book_ticker.json": "ws.bookTicker",
    "nautilus_py_futures/ws_futures_depth_update.json": "ws.depth5",  # partial book depth
    "nautilus_py_futures/ws_futures_depth_diff_update.json": "ws.depthUpdate",
    "nautilus_py_futures/ws_futures_trade_lite.json": "ws.TRADE_LITE",
    "nautilus_py_futures/ws_futures_order_update_new_price_match.json": "ws.OTU.NEW",
    "nautilus_py_futures/ws_futures_order_update_new_reduce_only_qty.json": "ws.OTU.NEW",
    "nautilus_py_futures/ws_futures_order_update_trade_reduce_only_qty.json": "ws.OTU.TRADE",
    "nautilus_py_futures/http_futures_market_klines.json": "klines",
    "nautilus_py_futures/http_futures_market_agg_trades.json": "aggTrades",
    "nautilus_py_futures/http_futures_market_trades.json": "trades",
    "nautilus_py_futures/http_futures_market_ticker_24hr.json": "ticker24hr",
    "nautilus_py_futures/http_futures_market_funding_rate.json": "fundingRate",
}

#: fixture files for things the local exchange does not produce, with the reason
NOT_PRODUCED = {
    "nautilus_py_futures/ws_futures_algo_update_finished.json": "conditional (algo) orders",
    "nautilus_py_futures/ws_futures_algo_update_finished_canceled.json": "conditional (algo) orders",
    "nautilus_py_futures/ws_futures_algo_update_triggered.json": "conditional (algo) orders",
    "nautilus_py_futures/ws_futures_algo_update_triggering.json": "conditional (algo) orders",
    "nautilus_py_futures/ws_futures_order_update_new_limit_if_touched_price_match.json": "conditional (algo) orders",
    "nautilus_py_futures/ws_futures_order_update_new_stop_limit_price_match.json": "conditional (algo) orders",
    "nautilus_py_futures/ws_futures_order_update_adl.json": "no ADL in the matching model",
    "nautilus_py_futures/ws_futures_order_update_adl_filled.json": "no ADL in the matching model",
    "nautilus_py_futures/ws_futures_order_update_liquidation.json": "no liquidation engine",
    "nautilus_py_futures/ws_futures_order_update_liquidation_zero_qty.json": "no liquidation engine",
    "nautilus_py_futures/ws_futures_order_update_settlement.json": "no delivery/delisting",
    "nautilus_py_futures/ws_futures_ticker_24hr.json": "24hr ticker stream not served",
    "nautilus_py_futures/http_futures_market_historical_trades.json": "REST historicalTrades not served",
    "nautilus_py_futures/http_futures_market_continuous_klines.json": "continuous klines not served",
    "nautilus_py_futures/http_futures_market_mark_price_klines.json": "REST klines not served",
    "nautilus_py_futures/http_futures_market_index_price_klines.json": "REST klines not served",
    "nautilus_py_futures/http_futures_market_blvt_nav_kline.json": "BLVT not served",
    "nautilus_py_futures/http_futures_market_open_interest.json": "open interest not served",
    "nautilus_py_futures/http_futures_market_open_interest_historical.json": "open interest not served",
    "nautilus_py_futures/http_futures_market_ticker_price.json": "ticker price not served",
    "nautilus_py_futures/http_futures_market_global_long_short_account_ratio.json": "ratios not served",
    "nautilus_py_futures/http_futures_market_top_long_short_account_ratio.json": "ratios not served",
    "nautilus_py_futures/http_futures_market_top_long_short_position_ratio.json": "ratios not served",
    "nautilus_py_futures/http_futures_market_taker_long_short_ratio.json": "ratios not served",
    "nautilus_py_futures/http_futures_market_asset_index.json": "multi-assets index not served",
    "nautilus_py_futures/http_futures_market_index_info.json": "composite index not served",
    "nautilus_py_futures/http_futures_account_positions_hedge.json": "hedge mode: the matching model is one-way",
    "nautilus_py_futures/http_futures_wallet_commission_rate_btcusdt_quarterly.json": "no quarterly contracts",
    "nautilus_py_futures/http_wallet_trading_fee.json": "spot wallet endpoint",
    "nautilus_py_futures/http_wallet_trading_fees.json": "spot wallet endpoint",
    "nautilus_py_spot_ws/ws_spot_execution_report_canceled.json": "spot executionReport",
    "nautilus_py_spot_ws/ws_spot_execution_report_expired.json": "spot executionReport",
    "nautilus_py_spot_ws/ws_spot_execution_report_rejected.json": "spot executionReport",
    "nautilus_py_spot_ws/ws_spot_execution_report_trade_l_zero_expired.json": "spot executionReport",
}
for _sym in (
    "AKROUSDT_2021-07-22",
    "CTKUSDT_2021-07-22",
    "DENTUSDT_2021-04-17",
    "KEEPUSDT_2021-07-22",
    "KSMUSDT_2021-04-17",
    "XMRUSDT_2021-04-17",
    "YFIUSDT_2021-04-17",
):
    PRODUCED[f"cryptofeed_fapi/depth_snapshot_limit1000_{_sym}.json"] = "depth"
NOT_PRODUCED["cryptofeed_fapi/exchangeInfo_fapi_2021-07-22.json"] = (
    "the same shape as the BTCUSDT-only file, for 122 symbols (compared through that one)"
)

#: keys of a fixture we do not emit, per kind (features the local exchange does not have)
MISSING = {
    "openOrders": {"activatePrice", "priceRate"},  # trailing-stop orders
    "exchangeInfo": set(),
}
#: keys we emit beyond the fixture, per kind, each documented by Binance (ref/binance.md)
EXTRA = {
    "bookTicker": {"lastUpdateId"},
    "commissionRate": {"rpiCommissionRate"},  # added 2025 (RPI orders)
    "ws.OTU.NEW": {"pm", "er"},  # priceMatch, expiry reason (added 2025-10-23)
    "ws.OTU.TRADE": {"pm", "er"},
    "openOrders": {"priceMatch", "selfTradePreventionMode", "goodTillDate"},  # 2023 fields
    "positionRisk.v2": {"breakEvenPrice", "notional", "isolatedWallet"},
    "account.v2": set(),
    "userTrades": set(),
    "fundingRate": {"markPrice"},  # added 2024 (ref/binance.md §8.2)
}
#: nested paths whose fixture value is [] (nothing to compare the element shape against)
_OK_EMPTY = {"positions", "underlyingSubType", "exchangeFilters"}
#: 2026 additions to market events (`st`, `ps`) that the recorded data predates
_NEW_MARKET_FIELDS = {"st", "ps"}


def _type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return type(v).__name__


def _diff(fix: Any, ours: Any, kind: str, path: str, ccxt: bool, problems: list[str]) -> None:
    tf, to = _type(fix), _type(ours)
    if "null" in (tf, to):
        return
    if tf != to:
        if ccxt and tf == "str" and to == "int" and fix.lstrip("-").isdigit():
            return
        if ccxt and tf == "str" and to == "bool":
            return
        problems.append(f"{path}: fixture {tf} ({fix!r:.40}), ours {to} ({ours!r:.40})")
        return
    if tf == "dict":
        missing = set(fix) - set(ours) - MISSING.get(kind, set()) - _NEW_MARKET_FIELDS
        extra = set(ours) - set(fix) - EXTRA.get(kind, set())
        if path == "" and kind.startswith("ws.") and "o" in fix:
            pass
        for k in sorted(missing):
            problems.append(f"{path}.{k}: in the fixture, not in ours")
        for k in sorted(extra):
            if path.count(".") == 0 or kind.startswith("ws."):
                problems.append(f"{path}.{k}: ours only (not documented as an addition)")
        for k in fix.keys() & ours.keys():
            _diff(fix[k], ours[k], kind, f"{path}.{k}", ccxt, problems)
    elif tf == "list" and fix and len({_type(x) for x in fix}) > 1:
        # a row of mixed scalars (a kline): compared position by position
        if len(fix) != len(ours):
            problems.append(f"{path}: {len(fix)} fields in the fixture, {len(ours)} in ours")
        for i, (a, b) in enumerate(zip(fix, ours, strict=False)):
            _diff(a, b, kind, f"{path}[{i}]", ccxt, problems)
    elif tf == "list":
        if not fix or not ours:
            if fix and path.rsplit(".", 1)[-1] not in _OK_EMPTY:
                problems.append(f"{path}: ours is empty, cannot compare its elements")
            return
        for i, item in enumerate(fix):
            other = ours[0]
            if isinstance(item, dict) and "filterType" in item:
                same = [o for o in ours if o.get("filterType") == item["filterType"]]
                if not same:
                    if item["filterType"] != "MAX_NUM_ALGO_ORDERS":
                        problems.append(f"{path}[{item['filterType']}]: not in ours")
                    continue
                other = same[0]
            _diff(item, other, kind, f"{path}[{i}]", ccxt, problems)


async def _collect() -> dict[str, Any]:
    """One session that makes the local exchange emit every kind in PRODUCED."""
    out: dict[str, Any] = {}
    async with exchange() as c:
        c.ex.pump(400)
        s = {"symbol": "BTCUSDT"}
        t = await c.ok("GET", "/fapi/v1/ticker/bookTicker", s, signed=False)
        bid, ask = t["bidPrice"], t["askPrice"]
        out["bookTicker"] = t
        info = await c.ok("GET", "/fapi/v1/exchangeInfo", signed=False)
        out["exchangeInfo"] = info
        out["exchangeInfo.symbol"] = info["symbols"][0]
        out["depth"] = await c.ok("GET", "/fapi/v1/depth", {**s, "limit": 5}, signed=False)
        out["premiumIndex"] = await c.ok("GET", "/fapi/v1/premiumIndex", s, signed=False)
        out["commissionRate"] = await c.ok("GET", "/fapi/v1/commissionRate", s)
        out["positionSide.dual"] = await c.ok("GET", "/fapi/v1/positionSide/dual")
        out["symbolConfig"] = await c.ok("GET", "/fapi/v1/symbolConfig")
        lk = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
        async with (
            trio_websocket.open_websocket_url(f"{c.ws_base}/private/ws/{lk}") as uws,
            trio_websocket.open_websocket_url(
                f"{c.ws_base}/public/ws/btcusdt@bookTicker/btcusdt@depth"
            ) as mws,
        ):
            limit = {**s, "side": "BUY", "type": "LIMIT", "timeInForce": "GTX", "quantity": "0.002"}
            batch = [dict(limit, price=bid, newClientOrderId="c-1")]
            out["batchOrders"] = await c.ok(
                "POST", "/fapi/v1/batchOrders", {"batchOrders": msgspec.json.encode(batch).decode()}
            )
            out["ws.OTU.NEW"] = await recv_json(uws)
            out["openOrder"] = await c.ok(
                "GET", "/fapi/v1/openOrder", {**s, "origClientOrderId": "c-1"}
            )
            out["openOrders"] = await c.ok("GET", "/fapi/v1/openOrders", s)
            await c.ok(
                "POST",
                "/fapi/v1/order",
                {**s, "side": "BUY", "type": "MARKET", "quantity": "0.003"},
            )
            msgs = await recv_until(uws, lambda m: m["e"] == "ACCOUNT_UPDATE")
            out["ws.TRADE_LITE"] = next(m for m in msgs if m["e"] == "TRADE_LITE")
            out["ws.OTU.TRADE"] = next(
                m for m in msgs if m["e"] == "ORDER_TRADE_UPDATE" and m["o"]["x"] == "TRADE"
            )
            out["userTrades"] = await c.ok("GET", "/fapi/v1/userTrades", s)
            out["positionRisk.v2"] = await c.ok("GET", "/fapi/v2/positionRisk", s)
            out["positionRisk.v3"] = await c.ok("GET", "/fapi/v3/positionRisk", s)
            out["account.v2"] = await c.ok("GET", "/fapi/v2/account")
            out["klines"] = await c.ok(
                "GET", "/fapi/v1/klines", {**s, "interval": "1m"}, signed=False
            )
            out["aggTrades"] = await c.ok("GET", "/fapi/v1/aggTrades", s, signed=False)
            out["trades"] = await c.ok("GET", "/fapi/v1/trades", s, signed=False)
            out["ticker24hr"] = await c.ok("GET", "/fapi/v1/ticker/24hr", s, signed=False)
            await mws.send_message('{"method":"SUBSCRIBE","params":["btcusdt@depth5"],"id":1}')
            assert (await recv_json(mws))["id"] == 1
            c.ex.pump(2000)
            got: dict[str, Any] = {}
            while len(got) < 3:
                m = await recv_json(mws)
                key = m["e"] if m["e"] != "depthUpdate" or len(m["b"]) != 5 else "depth5"
                got.setdefault(key, m)
            out["ws.bookTicker"] = got["bookTicker"]
            out["ws.depthUpdate"] = got["depthUpdate"]
            out["ws.depth5"] = got["depth5"]
            del ask
        # to the first funding time (streams closed: they would fall behind and be cut)
        while not c.ex.core.history.funding(0):
            assert c.ex.pump(1000), "the market ended before a funding time"
        out["fundingRate"] = await c.ok("GET", "/fapi/v1/fundingRate", s, signed=False)
    return out


def _unwrap(fix: Any) -> Any:
    if isinstance(fix, dict) and set(fix) == {"stream", "data"}:
        return fix["data"]
    return fix


def test_every_fixture_is_accounted_for():
    if not FIX.exists():
        pytest.skip(f"fixtures not available: {FIX} (set REPLAYMM_DATA to ../shared/data)")
    files = {str(p.relative_to(FIX)) for p in FIX.rglob("*.json")}
    unknown = files - set(PRODUCED) - set(NOT_PRODUCED)
    assert not unknown, (
        f"fixture files neither compared nor listed as not produced: {sorted(unknown)}"
    )


def test_payloads_have_the_fixtures_keys_and_types():
    if not FIX.exists():
        pytest.skip(f"fixtures not available: {FIX} (set REPLAYMM_DATA to ../shared/data)")
    ours = trio.run(_collect)
    problems: list[str] = []
    for rel, kind in sorted(PRODUCED.items()):
        path: Path = FIX / rel
        fix = _unwrap(msgspec.json.decode(path.read_bytes()))
        mine = ours[kind]
        if kind == "ws.OTU.NEW" or kind == "ws.OTU.TRADE":
            assert mine["o"]["x"] == fix["o"]["x"], rel
        local: list[str] = []
        _diff(fix, mine, kind, "", rel.startswith("ccxt"), local)
        problems += [f"{rel} ({kind}) {p}" for p in local]
    assert not problems, "\n".join(problems)
