"""The local exchange over real loopback sockets: signing, orders, streams, depth sync, faults.

Every test drives the market by hand (``feed="manual"``, ``pump``) and the server clock by
hand (``ManualClock``): no sleeps, no timing assertions; waits are generous timeouts only.
"""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import msgspec
import pytest
import trio
import trio_websocket

from adapters.binance import MarketParser
from adapters.local_exchange import sign
from adapters.local_exchange._testing import Client, exchange, recv_json, recv_until
from engine import BookDeltaReceived, TopOfBookUpdated, TradePrinted
from replay.sim import RateLimitConfig, SimConfig

# ref/binance.md §2.1: the signature test vector of Binance's docs
DOC_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
DOC_PAYLOAD = (
    "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
    "&recvWindow=5000&timestamp=1591702613943"
)
DOC_SIGNATURE = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"


def run(fn, *args):
    return trio.run(fn, *args)


def test_signature_vector_of_the_docs_is_accepted_and_an_altered_byte_rejected():
    assert sign(DOC_SECRET, DOC_PAYLOAD) == DOC_SIGNATURE

    async def main():
        async with exchange(api_secret=DOC_SECRET, t0_ms=1591702613943 + 20) as c:
            hdr = {"X-MBX-APIKEY": c.key, "Content-Type": "application/x-www-form-urlencoded"}
            # the exact bytes of the docs, signature in the query string, params in the body
            r = await c.http.post(
                "/fapi/v1/order?signature=" + DOC_SIGNATURE, content=DOC_PAYLOAD, headers=hdr
            )
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "NEW" and r.json()["price"] == "9000.00"
            # the whole payload in the query string, signature last: same signature
            r = await c.http.delete(
                "/fapi/v1/allOpenOrders?symbol=BTCUSDT&timestamp=1591702613943&signature="
                + sign(DOC_SECRET, "symbol=BTCUSDT&timestamp=1591702613943"),
                headers=hdr,
            )
            assert r.status_code == 200, r.text
            for i in range(len(DOC_PAYLOAD)):
                if DOC_PAYLOAD[i] in "&=":
                    continue
                altered = (
                    DOC_PAYLOAD[:i] + ("X" if DOC_PAYLOAD[i] != "X" else "Y") + DOC_PAYLOAD[i + 1 :]
                )
                r = await c.http.post(
                    "/fapi/v1/order", content=altered + "&signature=" + DOC_SIGNATURE, headers=hdr
                )
                assert r.status_code == 400, (i, r.text)
                assert r.json()["code"] == -1022, (i, r.text)
            # a wrong key is refused before the signature is looked at
            r = await c.http.post(
                "/fapi/v1/order?signature=" + DOC_SIGNATURE,
                content=DOC_PAYLOAD,
                headers={**hdr, "X-MBX-APIKEY": "nope"},
            )
            assert r.status_code == 401 and r.json()["code"] == -2015

    run(main)


def test_timestamp_window_minus_1021_as_binance():
    async def main():
        async with exchange() as c:
            now = c.clock.ms
            assert (
                await c.call("GET", "/fapi/v3/balance", timestamp=now - 4000)
            ).status_code == 200
            for ts, params in (
                (now - 5001, {}),  # older than the default recvWindow
                (now + 1000, {}),  # 1000 ms ahead
                (now - 2000, {"recvWindow": 1000}),
            ):
                r = await c.call("GET", "/fapi/v3/balance", params, timestamp=ts)
                assert r.status_code == 400 and r.json()["code"] == -1021, r.text
            r = await c.call("GET", "/fapi/v3/balance", {"recvWindow": 60001})
            assert r.json()["code"] == -1131
            # unsigned: -1102
            r = await c.http.get("/fapi/v3/balance?timestamp=1", headers={"X-MBX-APIKEY": c.key})
            assert r.json()["code"] == -1102

    run(main)


async def _book_ready(c: Client) -> tuple[str, str]:
    c.ex.pump(200)
    t = await c.ok("GET", "/fapi/v1/ticker/bookTicker", {"symbol": "BTCUSDT"}, signed=False)
    return t["bidPrice"], t["askPrice"]


def test_order_life_cycle_rest_and_user_stream():
    async def main():
        async with exchange() as c:
            bid, ask = await _book_ready(c)
            lk = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
            assert (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"] == lk
            async with trio_websocket.open_websocket_url(f"{c.ws_base}/private/ws/{lk}") as uws:
                # a resting post-only buy at the bid
                o = await c.ok(
                    "POST",
                    "/fapi/v1/order",
                    {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT",
                        "timeInForce": "GTX",
                        "quantity": "0.002",
                        "price": bid,
                        "newClientOrderId": "q-1",
                    },
                )
                assert o["status"] == "NEW" and o["clientOrderId"] == "q-1"
                m = await recv_json(uws)
                assert (
                    m["e"] == "ORDER_TRADE_UPDATE" and m["o"]["x"] == "NEW" and m["o"]["c"] == "q-1"
                )
                # duplicate client id among open orders: -4116
                r = await c.call(
                    "POST",
                    "/fapi/v1/order",
                    {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT",
                        "timeInForce": "GTC",
                        "quantity": "0.002",
                        "price": bid,
                        "newClientOrderId": "q-1",
                    },
                )
                assert r.json()["code"] == -4116
                # post-only that would cross: -5022, no event, never queryable
                r = await c.call(
                    "POST",
                    "/fapi/v1/order",
                    {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT",
                        "timeInForce": "GTX",
                        "quantity": "0.002",
                        "price": ask,
                        "newClientOrderId": "q-x",
                    },
                )
                assert r.json()["code"] == -5022
                r = await c.call(
                    "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "q-x"}
                )
                assert r.json()["code"] == -2013
                # amend: x=AMENDMENT
                price2 = f"{float(bid) - 1:.2f}"
                a = await c.ok(
                    "PUT",
                    "/fapi/v1/order",
                    {
                        "symbol": "BTCUSDT",
                        "origClientOrderId": "q-1",
                        "side": "BUY",
                        "quantity": "0.003",
                        "price": price2,
                    },
                )
                assert a["origQty"] == "0.003" and a["price"] == price2
                m = await recv_json(uws)
                assert m["o"]["x"] == "AMENDMENT" and m["o"]["q"] == "0.003"
                opens = await c.ok("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})
                assert [x["clientOrderId"] for x in opens] == ["q-1"]
                cx = await c.ok(
                    "DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "q-1"}
                )
                assert cx["status"] == "CANCELED"
                m = await recv_json(uws)
                assert m["o"]["x"] == "CANCELED" and m["o"]["X"] == "CANCELED"
                r = await c.call(
                    "DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "q-1"}
                )
                assert r.json()["code"] == -2011
                # a taker buy: TRADE_LITE, ORDER_TRADE_UPDATE (NEW, TRADE), ACCOUNT_UPDATE
                o = await c.ok(
                    "POST",
                    "/fapi/v1/order",
                    {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "MARKET",
                        "quantity": "0.001",
                        "newOrderRespType": "RESULT",
                    },
                )
                assert o["status"] == "FILLED" and o["executedQty"] == "0.001"
                msgs = await recv_until(uws, lambda m: m["e"] == "ACCOUNT_UPDATE")
                kinds = [(m["e"], m.get("o", {}).get("x")) for m in msgs]
                assert kinds == [
                    ("ORDER_TRADE_UPDATE", "NEW"),
                    ("TRADE_LITE", None),
                    ("ORDER_TRADE_UPDATE", "TRADE"),
                    ("ACCOUNT_UPDATE", None),
                ]
                assert msgs[2]["o"]["X"] == "FILLED" and msgs[2]["o"]["N"] == "USDT"
                assert msgs[3]["a"]["P"][0]["pa"] == "0.001"
                trades = await c.ok("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
                assert (
                    len(trades) == 1 and trades[0]["buyer"] is True and trades[0]["maker"] is False
                )
                pos = await c.ok("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"})
                assert pos[0]["positionAmt"] == "0.001"

    run(main)


def test_batch_orders_limit_and_partial_failure():
    async def main():
        async with exchange() as c:
            bid, _ = await _book_ready(c)
            item = {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.002",
                "price": bid,
            }
            six = [dict(item, newClientOrderId=f"b{i}") for i in range(6)]
            r = await c.call(
                "POST", "/fapi/v1/batchOrders", {"batchOrders": msgspec.json.encode(six).decode()}
            )
            assert r.status_code == 400 and r.json()["code"] == -1130
            two = [
                dict(item, newClientOrderId="b1"),
                dict(item, newClientOrderId="b2", price="1.23"),
            ]
            out = await c.ok(
                "POST", "/fapi/v1/batchOrders", {"batchOrders": msgspec.json.encode(two).decode()}
            )
            assert out[0]["clientOrderId"] == "b1" and out[1]["code"] in (-4014, -4013)
            r = await c.call(
                "POST",
                "/fapi/v1/batchOrders",
                {"batchOrders": msgspec.json.encode(two[:1]).decode()},
            )
            # 5 per batch on the 10 s window, 1 on the minute one (the refused batch counted too)
            assert r.headers["X-MBX-ORDER-COUNT-10S"] == "15"
            assert r.headers["X-MBX-ORDER-COUNT-1M"] == "3"
            out = await c.ok(
                "DELETE",
                "/fapi/v1/batchOrders",
                {"symbol": "BTCUSDT", "origClientOrderIdList": '["b1","nope"]'},
            )
            assert out[0]["status"] == "CANCELED" and out[1]["code"] == -2011

    run(main)


def test_market_streams_are_routed_and_parse_to_the_models_events():
    async def main():
        async with exchange() as c:
            c.ex.pump(1)
            parser = MarketParser(list(c.ex.source.instruments))
            pub = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@aggTrade"  # aggTrade: wrong path, silent
            mkt = "btcusdt@aggTrade/btcusdt@trade/btcusdt@markPrice@1s/btcusdt@kline_1m"
            async with (
                trio_websocket.open_websocket_url(
                    f"{c.ws_base}/public/stream?streams={pub}"
                ) as pws,
                trio_websocket.open_websocket_url(
                    f"{c.ws_base}/market/stream?streams={mkt}"
                ) as mws,
                trio_websocket.open_websocket_url(
                    f"{c.ws_base}/public/ws/btcusdt@bookTicker"
                ) as raw,
            ):
                c.ex.pump(3000)
                seen: dict[str, int] = {}
                last_top = None
                with trio.move_on_after(5):  # read what was sent; silence after that
                    while True:
                        for ws in (pws, mws):
                            with trio.move_on_after(0.5):
                                text = await ws.get_message()
                                stream = msgspec.json.decode(text)["stream"]
                                ev = parser.parse_combined(text.encode())
                                kind = stream.split("@", 1)[1]
                                seen[kind] = seen.get(kind, 0) + 1
                                if kind == "bookTicker":
                                    last_top = ev
                        if all(
                            seen.get(k)
                            for k in (
                                "depth@100ms",
                                "bookTicker",
                                "aggTrade",
                                "trade",
                                "markPrice@1s",
                                "kline_1m",
                            )
                        ):
                            break
                assert "aggTrade" in seen
                assert all(
                    seen.get(k)
                    for k in ("depth@100ms", "bookTicker", "trade", "markPrice@1s", "kline_1m")
                ), seen
                assert isinstance(last_top, TopOfBookUpdated)
                m = await recv_json(raw)
                assert m["e"] == "bookTicker"  # raw connection: bare payloads
                # live SUBSCRIBE / LIST_SUBSCRIPTIONS on an open connection
                await raw.send_message('{"method":"SUBSCRIBE","params":["btcusdt@depth"],"id":7}')
                replies = await recv_until(raw, lambda m: m.get("id") == 7)
                assert replies[-1] == {"result": None, "id": 7}

    run(main)


def test_depth_sync_client_builds_the_matching_models_book_across_a_gap():
    """Binance's futures procedure: buffer, snapshot, drop u < L, first U <= L <= u, then
    pu == previous u; on a break, resync from a new snapshot with the stream kept open."""

    async def main():
        async with exchange() as c:
            c.ex.pump(50)
            async with trio_websocket.open_websocket_url(
                f"{c.ws_base}/public/ws/btcusdt@depth@100ms"
            ) as ws:
                book: dict[str, dict[str, str]] = {"b": {}, "a": {}}
                synced = False
                last_u = 0
                resyncs = 0
                buffer: list[dict] = []

                async def snapshot() -> int:
                    snap = await c.ok(
                        "GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000}, signed=False
                    )
                    book["b"] = {p: q for p, q in snap["bids"]}
                    book["a"] = {p: q for p, q in snap["asks"]}
                    return snap["lastUpdateId"]

                def apply(m: dict) -> None:
                    for side in ("b", "a"):
                        for p, q in m[side]:
                            if q == "0" or float(q) == 0:
                                book[side].pop(p, None)
                            else:
                                book[side][p] = q

                async def step(target_u: int) -> None:
                    nonlocal synced, last_u, resyncs
                    while last_u < target_u:
                        m = await recv_json(ws)
                        if not synced:
                            buffer.append(m)
                            L = await snapshot()
                            kept = [x for x in buffer if x["u"] >= L]
                            if not kept or not (kept[0]["U"] <= L <= kept[0]["u"]):
                                last_u = buffer[-1]["u"]
                                continue  # missed it: keep buffering, snapshot again later
                            buffer.clear()
                            for x in kept:
                                apply(x)
                            last_u = kept[-1]["u"]
                            synced = True
                            continue
                        if m["pu"] != last_u:
                            synced = False
                            resyncs += 1
                            buffer.clear()
                            buffer.append(m)
                            L = await snapshot()
                            kept = [x for x in buffer if x["u"] >= L]
                            if kept and kept[0]["U"] <= L <= kept[0]["u"]:
                                for x in kept:
                                    apply(x)
                                synced = True
                            last_u = m["u"]
                            continue
                        apply(m)
                        last_u = m["u"]

                def model_book() -> dict[str, dict[str, str]]:
                    ins = c.ex.core.by_symbol["BTCUSDT"]
                    m = c.ex.core.sim.markets[ins.inst]
                    return {
                        "b": {ins.price_text(p): ins.qty_text(q) for p, q in m.bids.items() if q},
                        "a": {ins.price_text(p): ins.qty_text(q) for p, q in m.asks.items() if q},
                    }

                def model_u() -> int:
                    return c.ex.core.sim.markets[0].book_u

                for round_ in range(6):
                    if round_ == 3:
                        c.ex.control("gap_depth", {"count": 1})
                    c.ex.pump(400)
                    await step(model_u())
                    if synced:
                        assert book == model_book(), f"round {round_}"
                assert synced and book == model_book()
                assert resyncs >= 1  # the gap was seen through pu and repaired

    run(main)


def test_parse_of_every_depth_diff_matches_the_models_events():
    """The depth stream carries exactly the matching model's diffs (U/u/pu, levels)."""

    async def main():
        async with exchange() as c:
            c.ex.pump(1)
            parser = MarketParser(list(c.ex.source.instruments))
            sent: list[BookDeltaReceived] = []
            orig = c.ex.core.on_market

            def spy(now, ev):
                if type(ev) is BookDeltaReceived:
                    sent.append(ev)
                orig(now, ev)

            c.ex.core.on_market = spy
            async with trio_websocket.open_websocket_url(
                f"{c.ws_base}/public/stream?streams=btcusdt@depth"
            ) as ws:
                c.ex.pump(1500)
                got = []
                while len(got) < len(sent):
                    got.append(parser.parse_combined((await ws.get_message()).encode()))
            assert len(sent) > 10
            for a, b in zip(sent, got):
                assert (a.first_update_id, a.final_update_id, a.prev_final_update_id) == (
                    b.first_update_id,
                    b.final_update_id,
                    b.prev_final_update_id,
                )
                assert (a.bids, a.asks) == (b.bids, b.asks)

    run(main)


def test_rate_limits_429_then_418_with_retry_after():
    async def main():
        sim = SimConfig(
            rate_limits=RateLimitConfig(weight_per_minute=30, ban_after_429s=3, ban_seconds=120)
        )
        async with exchange(sim=sim) as c:
            codes = []
            for _ in range(12):
                r = await c.call(
                    "GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000}, signed=False
                )
                codes.append(r.status_code)
                if r.status_code in (429, 418):
                    assert int(r.headers["Retry-After"]) >= 1
                    assert r.json()["code"] == -1003
                assert "X-MBX-USED-WEIGHT-1M" in r.headers
            assert codes[0] == 200 and 429 in codes and codes[-1] == 418
            r = await c.call("GET", "/fapi/v1/time", signed=False)
            assert r.status_code == 418 and 100 <= int(r.headers["Retry-After"]) <= 120
            c.clock.advance_ms(121_000)
            assert (await c.call("GET", "/fapi/v1/time", signed=False)).status_code == 200

    run(main)


def test_fault_order_unknown_status_the_order_may_or_may_not_exist():
    async def main():
        async with exchange() as c:
            bid, _ = await _book_ready(c)
            base = {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.002",
                "price": bid,
            }
            c.ex.control("fail_orders", {"mode": "unknown", "count": 1, "placed": "yes"})
            r = await c.call("POST", "/fapi/v1/order", dict(base, newClientOrderId="u-yes"))
            assert r.status_code == 503 and r.json()["code"] == -1000
            q = await c.ok(
                "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "u-yes"}
            )
            assert q["status"] == "NEW"
            c.ex.control("fail_orders", {"mode": "unknown", "count": 1, "placed": "no"})
            r = await c.call("POST", "/fapi/v1/order", dict(base, newClientOrderId="u-no"))
            assert r.status_code == 503
            r = await c.call(
                "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "u-no"}
            )
            assert r.json()["code"] == -2013
            for mode, status in (
                ("unavailable", 503),
                ("internal", 503),
                ("throttled", 503),
                ("error500", 500),
            ):
                c.ex.control("fail_orders", {"mode": mode, "count": 1, "placed": "no"})
                r = await c.call("POST", "/fapi/v1/order", dict(base, newClientOrderId="m-" + mode))
                assert r.status_code == status, (mode, r.text)
            # timeout: the order is placed, no answer ever comes
            c.ex.control("fail_orders", {"mode": "timeout", "count": 1, "placed": "yes"})
            with pytest.raises(httpx.ReadTimeout):
                await c.http.post(
                    "/fapi/v1/order",
                    content=_signed(c, dict(base, newClientOrderId="t-yes")),
                    headers={
                        "X-MBX-APIKEY": c.key,
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                    timeout=1.0,
                )
            q = await c.ok(
                "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "t-yes"}
            )
            assert q["status"] == "NEW"

    run(main)


async def _drain(ws: trio_websocket.WebSocketConnection) -> None:
    with trio.fail_after(30):
        while True:
            await ws.get_message()


def _signed(c: Client, params: dict) -> bytes:
    q = urlencode({**params, "timestamp": c.clock.ms})
    return (q + "&signature=" + sign(c.secret, q)).encode()


# trio-websocket's client leaves its socket to the GC after the server cuts the connection
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_fault_ws_drop_listen_key_expiry_skew_and_countdown():
    async def main():
        async with exchange() as c:
            bid, _ = await _book_ready(c)
            lk = (await c.ok("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
            async with (
                trio_websocket.open_websocket_url(f"{c.ws_base}/private/ws/{lk}") as uws,
                trio_websocket.open_websocket_url(
                    f"{c.ws_base}/public/ws/btcusdt@bookTicker"
                ) as mws,
            ):
                # countdownCancelAll really cancels
                await c.ok(
                    "POST",
                    "/fapi/v1/order",
                    {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT",
                        "timeInForce": "GTC",
                        "quantity": "0.002",
                        "price": bid,
                        "newClientOrderId": "d-1",
                    },
                )
                assert (await recv_json(uws))["o"]["x"] == "NEW"
                cd = await c.ok(
                    "POST",
                    "/fapi/v1/countdownCancelAll",
                    {"symbol": "BTCUSDT", "countdownTime": 2000},
                )
                assert cd == {"symbol": "BTCUSDT", "countdownTime": "2000"}
                c.clock.advance_ms(2500)
                m = await recv_json(uws)  # the timer task (every 10 ms) fires it
                assert m["o"]["x"] == "CANCELED" and m["o"]["c"] == "d-1"
                # WS drop: the market connection is cut without a close frame
                assert c.ex.control("drop_ws", {"kind": "market"})["dropped"] == 1
                with pytest.raises(trio_websocket.ConnectionClosed):
                    await _drain(mws)
                # listenKey expiry
                c.ex.control("expire_listen_key", {})
                m = await recv_json(uws)
                assert m["e"] == "listenKeyExpired" and m["listenKey"] == lk
                r = await c.call("PUT", "/fapi/v1/listenKey", signed=False)
                assert r.json()["code"] == -1125
            # clock skew moves serverTime and makes client timestamps stale
            t0 = (await c.ok("GET", "/fapi/v1/time", signed=False))["serverTime"]
            c.ex.control("skew", {"ms": 7000})
            t1 = (await c.ok("GET", "/fapi/v1/time", signed=False))["serverTime"]
            assert t1 - t0 == 7000
            r = await c.call("GET", "/fapi/v3/account")
            assert r.json()["code"] == -1021

    run(main)


def test_ws_api_place_modify_cancel():
    async def main():
        async with exchange() as c:
            bid, _ = await _book_ready(c)

            def req(rid, method, params):
                p = {**params, "apiKey": c.key, "timestamp": c.clock.ms}
                from adapters.local_exchange import ws_payload

                p["signature"] = sign(c.secret, ws_payload(p))
                return msgspec.json.encode({"id": rid, "method": method, "params": p}).decode()

            async with trio_websocket.open_websocket_url(f"{c.ws_base}/ws-fapi/v1") as ws:
                await ws.send_message(
                    req(
                        1,
                        "order.place",
                        {
                            "symbol": "BTCUSDT",
                            "side": "BUY",
                            "type": "LIMIT",
                            "timeInForce": "GTC",
                            "quantity": "0.002",
                            "price": bid,
                            "newClientOrderId": "w-1",
                        },
                    )
                )
                r = await recv_json(ws)
                assert r["id"] == 1 and r["status"] == 200 and r["result"]["status"] == "NEW", r
                assert {x["rateLimitType"] for x in r["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS"}
                price2 = f"{float(bid) - 2:.2f}"
                await ws.send_message(
                    req(
                        2,
                        "order.modify",
                        {
                            "symbol": "BTCUSDT",
                            "origClientOrderId": "w-1",
                            "side": "BUY",
                            "quantity": "0.004",
                            "price": price2,
                        },
                    )
                )
                r = await recv_json(ws)
                assert r["status"] == 200 and r["result"]["origQty"] == "0.004"
                await ws.send_message(
                    req(3, "order.cancel", {"symbol": "BTCUSDT", "origClientOrderId": "w-1"})
                )
                r = await recv_json(ws)
                assert r["status"] == 200 and r["result"]["status"] == "CANCELED"
                await ws.send_message(
                    req(4, "order.cancel", {"symbol": "BTCUSDT", "origClientOrderId": "w-1"})
                )
                r = await recv_json(ws)
                assert r["status"] == 400 and r["error"]["code"] == -2011
                bad = msgspec.json.decode(
                    req(5, "order.cancel", {"symbol": "BTCUSDT", "orderId": 1})
                )
                bad["params"]["signature"] = "0" * 64
                await ws.send_message(msgspec.json.encode(bad).decode())
                r = await recv_json(ws)
                assert r["error"]["code"] == -1022

    run(main)


def test_trades_on_the_stream_are_the_models_trades():
    async def main():
        async with exchange() as c:
            c.ex.pump(1)
            parser = MarketParser(list(c.ex.source.instruments))
            async with trio_websocket.open_websocket_url(
                f"{c.ws_base}/market/stream?streams=btcusdt@trade"
            ) as ws:
                c.ex.pump(500)
                ev = parser.parse_combined((await ws.get_message()).encode())
                assert isinstance(ev, TradePrinted) and ev.qty > 0

    run(main)


@pytest.mark.realdata
def test_a_shipped_recording_drives_the_streams_and_the_depth_snapshot():
    from .conftest import data_file

    rec = data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240808.gz")

    async def main():
        async with exchange(market=str(rec)) as c:
            parser = MarketParser(list(c.ex.source.instruments))
            assert c.ex.pump(3000) == 3000
            async with trio_websocket.open_websocket_url(
                f"{c.ws_base}/public/stream?streams=btcusdt@depth@0ms/btcusdt@bookTicker"
            ) as ws:
                c.ex.pump(2000)
                kinds = set()
                while len(kinds) < 2:
                    ev = parser.parse_combined((await ws.get_message()).encode())
                    kinds.add(type(ev))
                assert kinds == {BookDeltaReceived, TopOfBookUpdated}
            snap = await c.ok(
                "GET", "/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000}, signed=False
            )
            assert len(snap["bids"]) > 100 and snap["lastUpdateId"] > 5_123_000_000_000
            assert float(snap["bids"][0][0]) < float(snap["asks"][0][0])
            # a marketable order fills against the recorded book
            o = await c.ok(
                "POST",
                "/fapi/v1/order",
                {
                    "symbol": "BTCUSDT",
                    "side": "SELL",
                    "type": "MARKET",
                    "quantity": "0.010",
                    "newOrderRespType": "RESULT",
                },
            )
            assert o["status"] == "FILLED"

    run(main)
