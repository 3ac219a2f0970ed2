"""The market history endpoints (klines, aggTrades, trades, ticker/24hr, fundingRate, income)
and the partial depth streams are the market the server plays, as a client sees it on the
streams. Manual feed and clock: no sleeps, no timing."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import trio
import trio_websocket

from adapters.local_exchange._testing import exchange, recv_json

S = {"symbol": "BTCUSDT"}


def _candles(trades: list[dict[str, Any]], span: int) -> dict[int, list[Any]]:
    """[o, h, l, c, volume, count] per candle open time, from trade stream messages."""
    out: dict[int, list[Any]] = {}
    for t in trades:
        start = t["T"] - t["T"] % span
        p, q = Decimal(t["p"]), Decimal(t["q"])
        c = out.get(start)
        if c is None:
            out[start] = [p, p, p, p, q, 1]
        else:
            c[1], c[2], c[3] = max(c[1], p), min(c[2], p), p
            c[4] += q
            c[5] += 1
    return out


def test_klines_trades_and_ticker_are_the_streamed_market():
    async def main() -> None:
        async with exchange() as c:
            url = f"{c.ws_base}/market/ws/btcusdt@trade"
            async with trio_websocket.open_websocket_url(url) as ws:
                c.ex.pump(4000)
                last = (await c.ok("GET", "/fapi/v1/trades", {**S, "limit": 1}, signed=False))[0]
                trades: list[dict[str, Any]] = []
                while not trades or trades[-1]["t"] != last["id"]:
                    trades.append(await recv_json(ws))
            assert len(trades) > 100

            for interval, span in (("1m", 60_000), ("5m", 300_000)):
                rows = await c.ok(
                    "GET", "/fapi/v1/klines", {**S, "interval": interval}, signed=False
                )
                want = _candles(trades, span)
                got = {r[0]: r for r in rows if r[8]}
                assert sorted(got) == sorted(want)
                for t0, (o, h, lo, cl, v, n) in want.items():
                    r = got[t0]
                    assert [Decimal(x) for x in r[1:6]] == [o, h, lo, cl, v]
                    assert r[8] == n and r[6] == t0 + span - 1 and len(r) == 12
                # consecutive, and the candle in progress (the last trade's) comes last
                assert all(b[0] - a[0] == span for a, b in itertools.pairwise(rows))
                assert rows[-1][0] <= trades[-1]["T"] <= rows[-1][6]
                assert Decimal(rows[-1][4]) == Decimal(trades[-1]["p"])

            agg = await c.ok("GET", "/fapi/v1/aggTrades", {**S, "limit": 50}, signed=False)
            assert [(a["a"], a["p"], a["q"], a["T"], a["m"]) for a in agg] == [
                (t["t"], t["p"], t["q"], t["T"], t["m"]) for t in trades[-50:]
            ]
            first = trades[10]["t"]
            agg = await c.ok(
                "GET", "/fapi/v1/aggTrades", {**S, "fromId": first, "limit": 5}, signed=False
            )
            assert [a["a"] for a in agg] == [t["t"] for t in trades[10:15]]
            recent = await c.ok("GET", "/fapi/v1/trades", {**S, "limit": 20}, signed=False)
            assert [(r["id"], r["price"], r["qty"], r["isBuyerMaker"]) for r in recent] == [
                (t["t"], t["p"], t["q"], t["m"]) for t in trades[-20:]
            ]

            c.clock.advance_ms(trades[-1]["T"] - c.clock.ms + 1)  # the clock past the tape
            tk = await c.ok("GET", "/fapi/v1/ticker/24hr", S, signed=False)
            assert tk["count"] == len(trades)
            assert (tk["firstId"], tk["lastId"]) == (trades[0]["t"], trades[-1]["t"])
            assert tk["lastPrice"] == trades[-1]["p"] and tk["openPrice"] == trades[0]["p"]
            assert Decimal(tk["volume"]) == sum(Decimal(t["q"]) for t in trades)
            assert Decimal(tk["highPrice"]) == max(Decimal(t["p"]) for t in trades)
            assert isinstance(await c.ok("GET", "/fapi/v1/ticker/24hr", signed=False), list)

            bad = await c.call("GET", "/fapi/v1/klines", {**S, "interval": "7m"}, signed=False)
            assert bad.status_code == 400 and bad.json()["code"] == -1120
            r = await c.call("GET", "/fapi/v1/klines", {**S, "interval": "1m"}, signed=False)
            assert r.headers["X-MBX-USED-WEIGHT-1M"]

    trio.run(main)


def test_funding_history_and_income():
    async def main() -> None:
        async with exchange() as c:
            c.ex.pump(2000)
            await c.ok(
                "POST",
                "/fapi/v1/order",
                {**S, "side": "BUY", "type": "MARKET", "quantity": "0.003"},
            )
            fills = await c.ok("GET", "/fapi/v1/userTrades", S)
            assert await c.ok("GET", "/fapi/v1/fundingRate", S, signed=False) == []
            while not c.ex.core.history.funding(0):
                assert c.ex.pump(1000), "the market ended before a funding time"
            rates = await c.ok("GET", "/fapi/v1/fundingRate", S, signed=False)
            assert len(rates) == 1 and rates[0]["symbol"] == "BTCUSDT"
            income = await c.ok("GET", "/fapi/v1/income", {})
            fees = [r for r in income if r["incomeType"] == "COMMISSION"]
            assert [(Decimal(r["income"]), r["tradeId"]) for r in fees] == [
                (-Decimal(f["commission"]), str(f["id"])) for f in fills
            ]
            funding = [r for r in income if r["incomeType"] == "FUNDING_FEE"]
            assert len(funding) == 1 and funding[0]["time"] == rates[0]["fundingTime"]
            # a long pays a positive rate: position x mark x rate, to the 8th decimal
            rate, mark = Decimal(rates[0]["fundingRate"]), Decimal(rates[0]["markPrice"])
            want = -(Decimal("0.003") * mark * rate)
            assert abs(Decimal(funding[0]["income"]) - want) <= Decimal("0.00000001")
            only = await c.ok("GET", "/fapi/v1/income", {"incomeType": "FUNDING_FEE"})
            assert only == funding
            assert len(await c.ok("GET", "/fapi/v1/income", {"limit": 1, "page": 2})) == 1

    trio.run(main)


def _apply(book: dict[str, dict[Decimal, Decimal]], msg: dict[str, Any]) -> None:
    for side, key in (("bids", "b"), ("asks", "a")):
        for p, q in msg[key]:
            if Decimal(q):
                book[side][Decimal(p)] = Decimal(q)
            else:
                book[side].pop(Decimal(p), None)


def test_partial_depth_streams_are_the_top_of_the_book():
    async def main() -> None:
        async with exchange() as c:
            c.ex.pump(300)
            snap = await c.ok("GET", "/fapi/v1/depth", {**S, "limit": 1000}, signed=False)
            book: dict[str, dict[Decimal, Decimal]] = {
                "bids": {Decimal(p): Decimal(q) for p, q in snap["bids"]},
                "asks": {Decimal(p): Decimal(q) for p, q in snap["asks"]},
            }
            names = "btcusdt@depth@100ms/btcusdt@depth5@100ms/btcusdt@depth20/btcusdt@depth10@500ms"
            url = f"{c.ws_base}/public/stream?streams={names}"
            async with trio_websocket.open_websocket_url(url) as ws:
                c.ex.pump(3000)
                last_u = c.ex.core.sim.markets[0].book_u
                seen: dict[str, list[dict[str, Any]]] = {}
                done = False
                while not done:
                    m = await recv_json(ws)
                    name, data = m["stream"], m["data"]
                    if name == "btcusdt@depth@100ms":
                        _apply(book, data)
                        done = data["u"] == last_u
                        continue
                    seen.setdefault(name, []).append(data)
                    n = int(name.split("@")[1].removeprefix("depth"))
                    bids = sorted(book["bids"].items(), reverse=True)[:n]
                    asks = sorted(book["asks"].items())[:n]
                    assert [(Decimal(p), Decimal(q)) for p, q in data["b"]] == bids
                    assert [(Decimal(p), Decimal(q)) for p, q in data["a"]] == asks
                    assert data["e"] == "depthUpdate" and data["s"] == "BTCUSDT"
                    assert data["U"] <= data["u"]
            assert set(seen) == {"btcusdt@depth5@100ms", "btcusdt@depth20", "btcusdt@depth10@500ms"}
            for msgs in seen.values():
                assert len(msgs) > 1
                for a, b in itertools.pairwise(msgs):
                    # U > the previous u on Binance; the synthetic market numbers U = pu
                    assert b["pu"] == a["u"] and b["U"] >= a["u"] and b["u"] > a["u"]
            # slower streams send fewer messages, and never two within their interval
            assert len(seen["btcusdt@depth10@500ms"]) < len(seen["btcusdt@depth5@100ms"])
            t = [m["E"] for m in seen["btcusdt@depth10@500ms"]]
            assert all(b - a >= 500 for a, b in itertools.pairwise(t))

    trio.run(main)
