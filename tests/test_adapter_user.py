"""Binance user data stream, REST order answers, signing and keys: on the real fixtures."""

from __future__ import annotations

import os

import pytest

from adapters.binance import builtin_instrument, instrument_from_symbol_info, load_exchange_info
from adapters.binance._orders import amend_params, place_params
from adapters.binance._sign import (
    Credentials,
    CredentialsError,
    encode_params,
    load_credentials,
    sign,
    ws_api_payload,
)
from adapters.binance._user import LISTEN_KEY_EXPIRED, ApiError, UserParser, parse_error
from engine import (
    AccountUpdated,
    AmendOrder,
    Instrument,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    PlaceOrder,
    Side,
    TimeInForce,
)
from tests.conftest import data_file

FIX = "binance-fixtures"


def fixture(*parts: str) -> bytes:
    return data_file(FIX, *parts).read_bytes()


def parser() -> UserParser:
    info = load_exchange_info(
        data_file(FIX, "nautilus_py_futures", "http_futures_market_exchange_info.json")
    )
    return UserParser(
        [
            instrument_from_symbol_info(0, info["BTCUSDT"]),
            instrument_from_symbol_info(1, info["ETHUSDT"]),
        ]
    )


def test_signature_matches_binance_test_vector():
    payload = (
        b"symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
        b"&recvWindow=5000&timestamp=1591702613943"
    )
    secret = b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
    assert (
        sign(secret, payload) == "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    )
    creds = Credentials("key", secret.decode())
    assert creds.sign(payload).startswith("3c6612")


def test_encoding_is_exact_and_ws_api_sorts():
    q = encode_params([("symbol", "BTCUSDT"), ("batchOrders", '[{"a":"1"}]'), ("reduceOnly", True)])
    assert q == "symbol=BTCUSDT&batchOrders=%5B%7B%22a%22%3A%221%22%7D%5D&reduceOnly=true"
    assert ws_api_payload({"timestamp": 5, "apiKey": "k", "signature": "x", "price": "1.0"}) == (
        "apiKey=k&price=1.0&timestamp=5"
    )


def test_credentials_never_show_and_key_file_must_be_private(tmp_path):
    creds = Credentials("AKEY123", "SSECRET456")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "AKEY123" not in text and "SSECRET456" not in text
    f = tmp_path / "keys"
    f.write_text("# test keys\napi_key=AKEY123\napi_secret=SSECRET456\n")
    os.chmod(f, 0o644)
    with pytest.raises(CredentialsError) as e:
        load_credentials(f)
    assert "chmod 600" in str(e.value) and "SSECRET456" not in str(e.value)
    os.chmod(f, 0o600)
    assert load_credentials(f).secret_values() == ("AKEY123", "SSECRET456")
    with pytest.raises(CredentialsError):
        load_credentials(env={})
    env = {"REPLAYMM_API_KEY": "k", "REPLAYMM_API_SECRET": "s"}
    assert load_credentials(env=env).api_key == "k"


def test_order_trade_update_trade_reduce_only():
    p = parser()
    evs = p.parse(
        fixture("nautilus_py_futures", "ws_futures_order_update_trade_reduce_only_qty.json")
    )
    assert evs == [
        OrderFilled(
            1,
            "O-12345-test-reduce-only-trade",
            8765432300,
            9988776655,
            Side.SELL,
            250000,  # 2500.00 at tick 0.01
            1000,  # 1.000 at step 0.001
            1000,
            1000,
            50_000_000,  # 0.5 USDT fee in 1e-8 units
            "USDT",
            False,
            1759347763200_000_000,
        )
    ]


def test_system_orders_and_zero_fills():
    p = parser()
    adl = p.parse(fixture("nautilus_py_futures", "ws_futures_order_update_adl_filled.json"))
    assert len(adl) == 1 and isinstance(adl[0], OrderFilled)
    assert adl[0].client_id == "adl_autoclose-123" and adl[0].side is Side.BUY
    zero = p.parse(
        fixture("nautilus_py_futures", "ws_futures_order_update_liquidation_zero_qty.json")
    )
    assert zero == [] and p.skipped["zero_fill"] == 1


def test_new_orders_are_acks():
    p = parser()
    for name in (
        "ws_futures_order_update_new_reduce_only_qty.json",
        "ws_futures_order_update_new_price_match.json",
    ):
        evs = p.parse(fixture("nautilus_py_futures", name))
        assert len(evs) == 1 and isinstance(evs[0], OrderAccepted), name


def test_trade_lite_is_skipped_to_keep_the_fee():
    p = parser()
    assert p.parse(fixture("nautilus_py_futures", "ws_futures_trade_lite.json")) == []
    assert p.skipped["TRADE_LITE"] == 1


def _update(x: str, X: str, **extra: object) -> bytes:
    import json

    o = {
        "s": "BTCUSDT", "c": "r1-5-0", "S": "BUY", "o": "LIMIT", "f": "GTX", "q": "0.002",
        "p": "61800.10", "ap": "0", "sp": "0", "x": x, "X": X, "i": 42, "l": "0", "z": "0",
        "L": "0", "T": 1700000000000, "t": 0, "m": False, "R": False, **extra,
    }  # fmt: skip
    return json.dumps(
        {"e": "ORDER_TRADE_UPDATE", "E": 1700000000001, "T": 1700000000000, "o": o}
    ).encode()


def test_cancel_expire_amend_and_other_symbols():
    p = parser()
    assert p.parse(_update("CANCELED", "CANCELED")) == [
        OrderCanceled(0, "r1-5-0", 42, 1700000000000_000_000)
    ]
    assert p.parse(_update("EXPIRED", "EXPIRED", er="2")) == [
        OrderExpired(0, "r1-5-0", 42, 1700000000000_000_000, 2)
    ]
    assert p.parse(_update("EXPIRED", "EXPIRED_IN_MATCH"))[0].reason == 1
    amended = p.parse(_update("AMENDMENT", "NEW", p="61800.20", q="0.003"))
    assert amended == [OrderAmended(0, "r1-5-0", 42, 618002, 3, 1700000000000_000_000)]
    assert p.parse(_update("NEW", "NEW", s="XRPUSDT")) == []
    assert p.skipped["other_symbol"] == 1


def test_account_update_listen_key_and_errors():
    p = parser()
    msg = (
        b'{"e":"ACCOUNT_UPDATE","E":1564745798939,"T":1564745798938,"a":{"m":"ORDER",'
        b'"B":[{"a":"USDT","wb":"122624.12345678","cw":"100.12345678","bc":"50.12345678"}],'
        b'"P":[{"s":"BTCUSDT","pa":"-0.020","ep":"61000.5","cr":"200","up":"0","mt":"cross","iw":"0","ps":"BOTH"}]}}'
    )
    (ev,) = p.parse(msg)
    assert isinstance(ev, AccountUpdated) and ev.reason == "ORDER"
    assert ev.balances[0].wallet == 12262412345678 and ev.positions[0].qty == -20
    assert ev.positions[0].entry_e8 == 6100050000000
    assert p.parse(b'{"e":"listenKeyExpired","E":1,"listenKey":"abc"}') == LISTEN_KEY_EXPIRED
    assert parse_error(b'{"code":-2011,"msg":"Unknown order sent."}') == ApiError(
        -2011, "Unknown order sent."
    )
    assert parse_error(b'{"orderId":1}') is None


def test_rest_answers_on_real_payloads():
    info = load_exchange_info(
        data_file(FIX, "nautilus_py_futures", "http_futures_market_exchange_info.json")
    )
    btc = instrument_from_symbol_info(0, info["BTCUSDT"])
    p = UserParser([btc, builtin_instrument(1, "LTCUSDT")] if False else [btc])
    (item,) = p.batch(
        fixture("ccxt_binance_static", "fapi_v1_batchOrders_response_new_limit_gtc.json")
    )
    assert item.status == "NEW" and item.orderId == 4087922044
    assert p.order_events(item) == [
        OrderAccepted(0, item.clientOrderId, 4087922044, 1739781831932_000_000)
    ]
    mixed = p.batch(
        b'[{"code":-5022,"msg":"Post Only order will be rejected"},'
        + fixture("ccxt_binance_static", "fapi_v1_batchOrders_response_new_limit_gtc.json")[1:]
    )
    assert mixed[0] == ApiError(-5022, "Post Only order will be rejected")
    # string-typed ids (ccxt's capture) parse too
    gtx = p.order(
        fixture("ccxt_binance_static", "fapi_v1_openOrder_response_new_limit_gtx_postonly.json")
    )
    assert gtx.orderId == 664082074 and gtx.timeInForce == "GTX"
    trades = p.trades(fixture("ccxt_binance_static", "fapi_v1_userTrades_response_taker_buy.json"))
    order = p.order(
        b'{"orderId":3524852987,"symbol":"BTCUSDT","status":"FILLED","clientOrderId":"r1-9-0",'
        b'"side":"BUY","price":"36567.10","origQty":"0.010","executedQty":"0.010"}'
    )
    (fill,) = p.fills_from_trades(order, trades)
    assert (fill.trade_id, fill.price, fill.qty, fill.cum_qty, fill.fee) == (
        272536245,
        365671,
        10,
        10,
        14626840,
    )
    assert not fill.is_maker and p.fills_from_trades(order, trades, {272536245}) == []
    pos = p.position_rows(
        fixture("ccxt_binance_static", "fapi_positionRisk_response_one_way_long.json")
    )
    assert pos[0].qty == 9 and pos[0].entry_e8 == 6744590000000
    hedge = p.position_rows(
        fixture("nautilus_py_futures", "http_futures_account_positions_hedge.json")
    )
    assert hedge == []  # hedge mode rows are not one-way positions
    bal = p.balance_rows(
        b'[{"asset":"USDT","balance":"10000.00000000","availableBalance":"9000.5"}]'
    )
    assert bal[0].wallet == 10000 * 10**8 and bal[0].available == 9000_50000000
    rows = p.open_order_rows(
        p.orders(fixture("nautilus_py_futures", "http_futures_account_orders.json"))
    )
    assert rows == []  # a trailing stop is not one of our limit orders


def test_order_params_are_exact_decimals():
    ins = Instrument(builtin_instrument(0, "BTCUSDT"))
    p = PlaceOrder(0, "r1-7-0", Side.SELL, 618003, 2, TimeInForce.GTX)
    assert encode_params(place_params(p, ins)) == (
        "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTX&quantity=0.002&price=61800.30"
        "&newClientOrderId=r1-7-0"
    )
    a = AmendOrder(0, "r1-7-0", Side.SELL, 618004, 3)
    assert encode_params(amend_params(a, ins)) == (
        "symbol=BTCUSDT&origClientOrderId=r1-7-0&side=SELL&quantity=0.003&price=61800.40"
    )
