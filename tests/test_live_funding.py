"""Funding from the user stream: ``ACCOUNT_UPDATE`` m=FUNDING_FEE -> ``FundingSettled``.

Parser tests use payloads in Binance's documented shape (ref/binance.md §4.4; the fixtures have no
ACCOUNT_UPDATE, so the field set is the one of the docs' example, as in test_adapter_user):
isolated margin sends ``B`` with ``bc`` (the funding) and the one ``P`` row that paid; cross
margin sends ``B`` only, with no symbol — credited to nobody rather than guessed.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio

from adapters.binance import builtin_instrument
from adapters.binance._user import UserParser
from adapters.local_exchange import ExchangeConfig, ExchangeServer, open_exchange
from engine import AccountUpdated, EventRecord, FundingSettled, MarkPriceUpdated
from journal import JournalReader
from replay import verify
from tests.test_live_e2e import _run, runtime


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


def test_cross_margin_funding_is_learnt_from_the_income_history(tmp_path):
    # Against the local exchange (cross margin, like the account Binance gives by default):
    # its ACCOUNT_UPDATE for funding has the amount in B and no symbol, so the venue asks
    # /fapi/v1/income and journals the funding of our symbol, once — also across a restart,
    # whose catch-up reads the same history again.
    journal = tmp_path / "live"
    seen: dict[str, Any] = {}

    async def session(ex: ExchangeServer, settle: bool) -> None:
        rt = runtime(journal, ex.port, dead_man_s=0)
        out: dict[str, Any] = {}
        async with trio.open_nursery() as n:
            await n.start(_run, rt, out)
            with trio.fail_after(120):
                while settle and rt.engine.state.position(0).qty == 0:
                    ex.pump(200)
                    await trio.sleep(0.02)
                if settle:
                    m = ex.core.sim.markets[0]
                    due = m.next_funding_ns
                    assert due and m.funding_rate
                    mark = MarkPriceUpdated(
                        0, due + 1, m.mark_e8, m.mark_e8, m.funding_rate, due + 8 * 3600 * 10**9
                    )
                    ex.core.on_market(ex.now(), mark)
                    ex._flush()
                    while rt.venue.stats["funding_from_income"] < 1:  # noqa: ASYNC110
                        await trio.sleep(0.05)
                    seen["position"] = rt.engine.state.position(0)
                    seen["income"] = msgspec.json.decode(
                        await rt.venue.rest.income("FUNDING_FEE", 0)
                    )
                else:
                    ex.pump(500)
                    while not rt.venue.stats["reconciliations"]:  # noqa: ASYNC110
                        await trio.sleep(0.05)
                    seen["restart_stats"] = dict(rt.venue.stats)
            rt.request_stop("test")

    async def main() -> None:
        async with open_exchange(ExchangeConfig(seed=21, feed="manual")) as ex:
            await session(ex, settle=True)
            await session(ex, settle=False)

    trio.run(main)
    income = seen["income"]
    assert isinstance(income, list) and len(income) == 1 and income[0]["symbol"] == "BTCUSDT"
    paid = round(float(income[0]["income"]) * 10**8)
    fundings = [
        r.event
        for r in JournalReader(journal).records()
        if type(r) is EventRecord and type(r.event) is FundingSettled
    ]
    assert len(fundings) == 1, "journaled once, not again by the restart's catch-up"
    assert fundings[0].amount == paid != 0
    assert seen["position"].funding == paid
    assert seen["restart_stats"]["funding_from_income"] == 0
    assert verify(journal).identical
