"""Funding from the user stream: ``ACCOUNT_UPDATE`` m=FUNDING_FEE -> ``FundingSettled``.

Payloads in Binance's documented shape (ref/binance.md §4.4; the fixtures have no
ACCOUNT_UPDATE, so the field set is the one of the docs' example, as in test_adapter_user):
isolated margin sends ``B`` with ``bc`` (the funding) and the one ``P`` row that paid; cross
margin sends ``B`` only, with no symbol — credited to nobody rather than guessed.
"""

from __future__ import annotations

from adapters.binance import builtin_instrument
from adapters.binance._user import UserParser
from engine import AccountUpdated, FundingSettled


def _parser() -> UserParser:
    return UserParser([builtin_instrument(0, "BTCUSDT"), builtin_instrument(1, "BTCUSDC")])


def _msg(balances: str, positions: str) -> bytes:
    return (
        '{"e":"ACCOUNT_UPDATE","E":1723190400005,"T":1723190400001,"a":{"m":"FUNDING_FEE",'
        f'"B":[{balances}],"P":[{positions}]}}}}'
    ).encode()


USDT = '{"a":"USDT","wb":"4998.76543210","cw":"0","bc":"-1.23456790"}'
BTC_ISOLATED = (
    '{"s":"BTCUSDT","pa":"0.250","ep":"61000.5","cr":"0","up":"12.5","mt":"isolated",'
    '"iw":"3050.02","ps":"BOTH"}'
)


def test_isolated_funding_is_settled_on_its_symbol():
    evs = _parser().parse(_msg(USDT, BTC_ISOLATED))
    assert isinstance(evs, list) and len(evs) == 2
    acc, fund = evs
    assert isinstance(acc, AccountUpdated) and acc.reason == "FUNDING_FEE"
    assert acc.balances[0].wallet == 499876543210
    assert fund == FundingSettled(
        inst=0,
        ts_ns=1723190400001_000_000,
        position=250,
        mark_e8=0,
        rate=0,
        amount=-123456790,
        asset="USDT",
    )


def test_funding_in_a_wrapped_combined_stream_message():
    raw = b'{"stream":"abc","data":' + _msg(USDT, BTC_ISOLATED) + b"}"
    assert [type(e) for e in _parser().parse(raw)] == [AccountUpdated, FundingSettled]


def test_cross_funding_has_no_symbol_and_settles_nothing():
    p = _parser()
    evs = p.parse(_msg(USDT, ""))
    assert [type(e) for e in evs] == [AccountUpdated]  # the balance still moves
    assert p.skipped == {"funding_cross": 1}


def test_funding_of_a_symbol_we_do_not_trade_is_not_ours():
    p = _parser()
    eth = BTC_ISOLATED.replace("BTCUSDT", "ETHUSDT")
    assert [type(e) for e in p.parse(_msg(USDT, eth))] == [AccountUpdated]
    # two rows could share the USDT change: which one paid what is unknown, so neither
    evs = p.parse(_msg(USDT, BTC_ISOLATED + "," + eth))
    assert [type(e) for e in evs] == [AccountUpdated]
    assert p.skipped["funding_unattributed"] == 1


def test_one_row_per_margin_asset_each_with_its_own_change():
    usdc = '{"a":"USDC","wb":"100","cw":"0","bc":"0.5"}'
    btcusdc = BTC_ISOLATED.replace("BTCUSDT", "BTCUSDC").replace('"0.250"', '"-0.100"')
    evs = _parser().parse(_msg(USDT + "," + usdc, BTC_ISOLATED + "," + btcusdc))
    fundings = [e for e in evs if isinstance(e, FundingSettled)]
    assert [(f.inst, f.position, f.amount, f.asset) for f in fundings] == [
        (0, 250, -123456790, "USDT"),
        (1, -100, 50000000, "USDC"),
    ]


def test_other_reasons_settle_no_funding():
    raw = _msg(USDT, BTC_ISOLATED).replace(b"FUNDING_FEE", b"ORDER")
    assert [type(e) for e in _parser().parse(raw)] == [AccountUpdated]


def test_cross_funding_from_the_income_endpoint():
    body = (
        b'[{"symbol":"BTCUSDT","incomeType":"FUNDING_FEE","income":"-0.01234567","asset":"USDT",'
        b'"info":"FUNDING_FEE","time":1723190400000,"tranId":9689322392,"tradeId":""},'
        b'{"symbol":"ETHUSDT","incomeType":"FUNDING_FEE","income":"-0.5","asset":"USDT",'
        b'"info":"FUNDING_FEE","time":1723190400000,"tranId":9689322393,"tradeId":""},'
        b'{"symbol":"BTCUSDT","incomeType":"COMMISSION","income":"-0.02","asset":"USDT",'
        b'"info":"","time":1723190400000,"tranId":9689322394,"tradeId":"1"}]'
    )
    assert _parser().funding_from_income(body) == [
        FundingSettled(0, 1723190400000_000_000, 0, 0, 0, -1234567, "USDT")
    ]
