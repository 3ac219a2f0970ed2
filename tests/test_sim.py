"""The simulated exchange: queue position, Binance's rules and codes, rate limits, money."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import (
    AccountUpdated,
    AmendOrder,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelOrder,
    FundingSettled,
    MarkPriceUpdated,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
    TopOfBookUpdated,
    TradePrinted,
)
from replay.sim import Reject, SimConfig, SimExchange, parse_price, parse_qty
from tests.helpers import btc

BUY, SELL = Side.BUY, Side.SELL
GTX, GTC, IOC, FOK = TimeInForce.GTX, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
P0 = 618000  # 61800.0 in ticks of 0.1


def config(**kw) -> SimConfig:
    return msgspec.convert(kw, SimConfig, strict=False)


def exchange(**kw) -> SimExchange:
    x = SimExchange(config(**kw), [btc()])
    # a book: 5 lots bid at P0, 7 lots ask at P0+1
    x.apply_market(0, BookSnapshotReceived(0, 0, 100, [P0, 5, P0 - 1, 9], [P0 + 1, 7, P0 + 2, 4]))
    x.apply_market(0, TopOfBookUpdated(0, 0, 100, P0, 5, P0 + 1, 7))
    return x


def place(
    x: SimExchange, cid: str, side: Side, price: int, qty: int, tif=GTX, t: int = 1, **kw
) -> list:
    return x.submit(t, PlaceOrder(0, cid, side, price, qty, tif, **kw))


def fills(events: list) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


def trade(x: SimExchange, price: int, qty: int, taker: Side, t: int = 2) -> list:
    return x.apply_market(t, TradePrinted(0, t, t, price, qty, taker))


# ---------------------------------------------------------------------------------------------
# queue position


@pytest.mark.parametrize("model", ["risk_averse", "power"])
def test_queue_behind_five_lots(model):
    x = exchange(queue={"model": model})
    out = place(x, "a", BUY, P0, 2)
    assert [type(e) for e in out] == [OrderAccepted]
    assert x.orders["a"].ahead == 5
    assert fills(trade(x, P0, 3, SELL)) == []  # 3 traded at our level: 2 still ahead of us
    assert x.orders["a"].ahead == 2
    (f,) = fills(trade(x, P0, 3, SELL))  # 3 more: 1 of them reaches us
    assert (f.qty, f.cum_qty, f.order_qty, f.is_maker, f.price) == (1, 1, 2, True, P0)
    assert x.orders["a"].filled == 1 and x.orders["a"].ahead == 0


@pytest.mark.parametrize("model", ["risk_averse", "power"])
def test_a_cancellation_ahead_moves_us_up(model):
    x = exchange(queue={"model": model})
    place(x, "a", BUY, P0, 2)
    # the level shrinks 5 -> 2 with no trade: someone ahead cancelled (nobody is behind us)
    x.apply_market(3, BookDeltaReceived(0, 3, 101, 101, 100, [P0, 2], []))
    assert x.orders["a"].ahead == 2
    (f,) = fills(trade(x, P0, 3, SELL, t=4))
    assert f.qty == 1


def test_power_model_splits_cancellations_between_ahead_and_behind():
    """ahead 4, behind 6, 3 cancelled: power 2 puts 16/(16+36) of them ahead -> 1 lot."""
    for model, expected in (("power", 3), ("risk_averse", 4)):
        x = SimExchange(config(queue={"model": model, "power": 2}), [btc()])
        x.apply_market(0, BookSnapshotReceived(0, 0, 100, [P0, 4], [P0 + 1, 1]))
        x.apply_market(0, TopOfBookUpdated(0, 0, 100, P0, 4, P0 + 1, 1))
        place(x, "a", BUY, P0, 1)
        x.apply_market(1, BookDeltaReceived(0, 1, 101, 101, 100, [P0, 10], []))  # 6 join behind us
        x.apply_market(2, BookDeltaReceived(0, 2, 102, 102, 101, [P0, 7], []))  # 3 cancel
        assert x.orders["a"].ahead == expected, model


@pytest.mark.parametrize("n_orders", [1, 8])  # marked directly / after a test of the diff
def test_a_diff_moves_only_the_queues_of_the_levels_it_carries(n_orders):
    x = exchange(queue={"model": "risk_averse"})
    prices = [P0 - 10 * i for i in range(n_orders)]  # P0 holds 5 lots; the others are empty
    for i, p in enumerate(prices):
        place(x, f"o{i}", BUY, p, 1)
    m = x.markets[0]
    before = dict(m.bids)
    # a diff that touches none of our levels: no queue moves, our levels keep their
    # quantities, and a level we marked but that never existed does not appear in the book
    x.apply_market(3, BookDeltaReceived(0, 3, 101, 101, 100, [P0 - 1, 3, P0 - 2, 6], []))
    assert m.bids == {**before, P0 - 1: 3, P0 - 2: 6}
    assert [x.orders[f"o{i}"].ahead for i in range(n_orders)] == [5] + [0] * (n_orders - 1)
    # a diff carrying our best level (and a quantity equal to another of our prices)
    x.apply_market(4, BookDeltaReceived(0, 4, 102, 102, 101, [P0 - 5, P0 - 10, P0, 2], []))
    assert x.orders["o0"].ahead == 2
    assert m.bids[P0] == 2 and m.bids[P0 - 5] == P0 - 10
    assert P0 - 10 not in m.bids  # marked (n_orders > 1), never a level: still absent


def test_trade_printed_through_our_price_fills_everything_and_trades_at_the_level_count_once():
    x = exchange()
    place(x, "a", SELL, P0 + 1, 3)
    place(x, "b", SELL, P0 + 2, 2)
    out = trade(x, P0 + 3, 1, BUY)  # a buyer swept up to P0+3: both our asks were taken
    assert [(f.client_id, f.qty, f.price) for f in fills(out)] == [
        ("a", 3, P0 + 1),
        ("b", 2, P0 + 2),
    ]
    assert x.positions[0].qty == -5 and not x.orders
    assert [type(e) for e in out].count(AccountUpdated) == 2


def test_the_best_price_reaching_our_order_fills_it():
    x = exchange()
    place(x, "a", BUY, P0, 2)
    out = x.apply_market(5, TopOfBookUpdated(0, 5, 200, P0 - 2, 1, P0, 3))  # ask came down to us
    assert [f.qty for f in fills(out)] == [2]


# ---------------------------------------------------------------------------------------------
# taking liquidity


def test_post_only_that_would_cross_is_refused_and_never_rests():
    x = exchange()
    (rej,) = place(x, "a", BUY, P0 + 1, 1)
    assert isinstance(rej, OrderRejected) and rej.code == -5022
    assert "Post Only order will be rejected" in rej.message
    assert (
        not x.orders and x.apply_market(9, TopOfBookUpdated(0, 9, 300, P0 - 5, 1, P0 - 4, 1)) == []
    )


def test_marketable_orders_take_the_book_with_taker_fees():
    x = exchange(fees={"maker": "-0.0001", "taker": "0.0005"})
    out = place(x, "a", BUY, P0 + 2, 9, tif=GTC)
    f1, f2 = fills(out)
    assert (f1.price, f1.qty, f1.is_maker) == (P0 + 1, 7, False)
    assert (f2.price, f2.qty) == (P0 + 2, 2)
    # fee: 61800.1 x 0.007 = 432.6007 USDT notional, x 0.0005 = 0.21630035 USDT
    assert f1.fee == 21630035
    assert not x.orders  # completely filled
    out = place(x, "b", BUY, P0 + 2, 20, tif=IOC)
    assert isinstance(out[-1], OrderExpired) and out[-1].reason == 2  # IOC remainder
    assert place(x, "c", BUY, P0 + 2, 20, tif=FOK)[0].code == -5021
    out = x.submit(3, PlaceOrder(0, "m", SELL, 0, 3, GTC, OrderType.MARKET))
    assert [f.price for f in fills(out)] == [P0] and fills(out)[0].qty == 3
    # a maker fill with a negative maker fee is a rebate
    place(x, "r", BUY, P0 - 1, 1)
    (f,) = fills(trade(x, P0 - 2, 1, SELL))
    assert f.fee < 0


# ---------------------------------------------------------------------------------------------
# Binance's rules and codes


def test_tick_and_step_violations_have_binance_codes():
    ins = x_ins = exchange().markets[0].ins
    assert parse_price(ins, "61800.2") == 618002
    with pytest.raises(Reject) as e:
        parse_price(x_ins, "61800.25")
    assert e.value.code == -4014
    with pytest.raises(Reject) as e:
        parse_qty(ins, "0.0015")
    assert e.value.code == -4023
    with pytest.raises(Reject) as e:
        parse_price(ins, "abc")
    assert e.value.code == -1102


@pytest.mark.parametrize(
    ("order", "code"),
    [
        (dict(side=BUY, price=50_000, qty=1), -4164),  # 5000 x 0.001 = 5 USDT < 10 min notional
        (dict(side=BUY, price=3000, qty=10), -4013),  # below minPrice 402
        (dict(side=BUY, price=P0 - 10, qty=0), -4003),
        (dict(side=BUY, price=P0 - 10, qty=2_000_000), -4005),  # above maxQty 1000
        (dict(side=SELL, price=P0 + 10, qty=1, reduce_only=True), -2022),  # nothing to reduce
        (dict(side=BUY, price=P0 - 10, qty=900_000), -2019),  # 55,000 USDT of margin at 10x
    ],
)
def test_filters_reject_with_binance_codes(order, code):
    x = exchange()
    p = PlaceOrder(
        0,
        "x",
        order["side"],
        order["price"],
        order["qty"],
        GTX,
        reduce_only=order.get("reduce_only", False),
    )
    (rej,) = x.submit(1, p)
    assert isinstance(rej, OrderRejected) and rej.code == code, rej
    assert not x.orders


def test_reduce_only_orders_are_exempt_from_min_notional():
    x = exchange()
    place(x, "a", BUY, P0 + 1, 1, tif=GTC)  # take 1 lot: long 0.001
    out = x.submit(2, PlaceOrder(0, "b", SELL, P0 + 5, 1, GTX, reduce_only=True))
    assert isinstance(out[0], OrderAccepted)


def test_price_band_against_mark_price():
    x = exchange()
    x.apply_market(
        1, MarkPriceUpdated(0, 1, 61800_00000000, 61800_00000000, 10_000, 8 * 3600 * 10**9)
    )
    (rej,) = place(x, "a", BUY, 700_000, 1)  # 70,000 > 61,800 x 1.1 = 67,980
    assert rej.code == -4016 and "can't be higher than 67980.0" in rej.message
    (rej,) = place(x, "b", SELL, 300_000, 1)  # 30,000 < 61,800 x 0.5454
    assert rej.code == -4024


def test_max_open_orders_and_duplicate_ids_and_hedge_mode():
    x = exchange(rate_limits={"enabled": False}, balances={"USDT": "10000000"})
    for i in range(200):
        assert isinstance(place(x, f"o{i}", BUY, P0 - 10 - i, 1)[0], OrderAccepted)
    assert place(x, "o200", BUY, P0 - 500, 1)[0].code == -2025
    assert place(x, "o5", BUY, P0 - 600, 1)[0].code == -4116  # an open order has this id
    assert exchange(hedge_mode=True).submit(1, PlaceOrder(0, "h", BUY, P0 - 5, 1))[0].code == -4061


def test_cancel_amend_and_unknown_orders():
    x = exchange()
    place(x, "a", BUY, P0 - 3, 2)
    (amended,) = x.submit(2, AmendOrder(0, "a", BUY, P0 - 2, 3))
    assert (amended.price, amended.qty) == (P0 - 2, 3)
    assert x.orders["a"].ahead == 0  # re-queued at the back of an empty level
    assert x.submit(3, AmendOrder(0, "a", BUY, P0 - 2, 3))[0].code == -5027  # no change
    (gone,) = x.submit(4, AmendOrder(0, "a", BUY, P0 + 1, 3))  # a GTX amend that would cross
    assert isinstance(gone, OrderCanceled)
    (c,) = x.submit(5, CancelOrder(0, "a"))
    assert c.code == -2011 and c.message == "Unknown order sent."


def test_order_count_limit_gives_429_then_418():
    x = exchange(
        rate_limits={"orders_per_10s": 5, "ban_after_429s": 3, "ban_seconds": 120},
        balances={"USDT": "1000000"},
    )
    codes = []
    for i in range(10):
        out = place(x, f"o{i}", BUY, P0 - 10 - i, 1, t=1_000_000 * i)
        codes.append(out[0].code if isinstance(out[0], OrderRejected) else 0)
    assert codes[:5] == [0] * 5
    assert codes[5:8] == [-1015, -1015, -1015]  # 429: too many new orders
    assert codes[8:] == [-1003, -1003]  # 418: banned
    assert "banned until" in place(x, "z", BUY, P0 - 50, 1, t=10**9 * 60)[0].message
    assert isinstance(
        place(x, "late", BUY, P0 - 50, 1, t=10**9 * 200)[0], OrderAccepted
    )  # ban over
    # cancels cost no order count
    assert not isinstance(x.submit(10**9 * 201, CancelOrder(0, "late"))[0], OrderRejected)


# ---------------------------------------------------------------------------------------------
# money


def test_funding_pays_exactly_size_times_mark_times_rate():
    x = exchange()
    place(x, "a", BUY, P0 + 1, 2, tif=GTC)  # long 0.002 BTC
    funding_ns = 8 * 3600 * 10**9
    x.apply_market(1, MarkPriceUpdated(0, 1, 61800_00000000, 0, 10_000, funding_ns))  # r = 0.0001
    assert (
        x.apply_market(
            2, MarkPriceUpdated(0, funding_ns - 1, 61800_00000000, 0, 10_000, funding_ns)
        )
        == []
    )
    out = x.apply_market(
        3, MarkPriceUpdated(0, funding_ns, 28155_10000000, 0, 5_000, 2 * funding_ns)
    )
    (f,) = [e for e in out if isinstance(e, FundingSettled)]
    # 0.002 x 28155.1 x 0.0001 = 0.00563102 USDT, paid by the long
    assert (
        f.amount == -563102 and f.position == 2 and f.rate == 10_000 and f.mark_e8 == 28155_10000000
    )
    assert Decimal(f.amount) / 10**8 == -Decimal("0.002") * Decimal("28155.1") * Decimal("0.0001")
    assert x.positions[0].funding == -563102
    # short receives when the rate is positive
    x2 = exchange()
    x2.submit(1, PlaceOrder(0, "s", SELL, 0, 3, GTC, OrderType.MARKET))
    x2.apply_market(1, MarkPriceUpdated(0, 1, 0, 0, 10_000, funding_ns))
    out = x2.apply_market(2, MarkPriceUpdated(0, funding_ns, 61800_00000000, 0, 0, 2 * funding_ns))
    (f,) = [e for e in out if isinstance(e, FundingSettled)]
    assert f.amount == 3 * 61800 * 10_000 // 1000  # 0.003 x 61800 x 0.0001 USDT = 1854000 minor


# ---------------------------------------------------------------------------------------------
# properties


ORDERS = st.tuples(
    st.sampled_from(["place", "cancel", "amend"]),
    st.integers(0, 7),  # order slot -> client id
    st.sampled_from([BUY, SELL]),
    st.integers(-6, 6),  # price offset from P0
    st.integers(1, 6),  # lots
    st.sampled_from([GTX, GTC, IOC]),
    st.booleans(),  # reduce only
)
MARKET = st.tuples(
    st.sampled_from(["trade", "top", "delta"]),
    st.integers(-6, 6),
    st.integers(0, 9),
    st.sampled_from([BUY, SELL]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(ORDERS, MARKET), max_size=80), st.sampled_from(["risk_averse", "power"]))
def test_random_streams_keep_the_exchange_consistent(steps, model):
    x = exchange(queue={"model": model}, balances={"USDT": "200"})
    signed_fills = 0
    fill_by_order: dict[str, int] = {}
    uid = 100
    for t, s in enumerate(steps, 1):
        out: list = []
        if s[0] in ("place", "cancel", "amend"):
            kind, slot, side, off, qty, tif, ro = s
            cid = f"c{slot}"
            if kind == "place":
                out = x.submit(
                    t, PlaceOrder(0, f"{cid}-{t}", side, P0 + off, qty, tif, reduce_only=ro)
                )
                accepted = any(isinstance(e, OrderAccepted) for e in out)
                if accepted and not ro:
                    assert x.available("USDT") >= -x.markets[0].ins.notional(
                        P0 + 7, 6
                    )  # no overdraft beyond one order's rounding
            elif x.orders:
                target = sorted(x.orders)[slot % len(x.orders)]
                out = x.submit(
                    t,
                    CancelOrder(0, target)
                    if kind == "cancel"
                    else AmendOrder(0, target, x.orders[target].side, P0 + off, qty),
                )
        else:
            kind, off, qty, side = s
            uid += 1
            if kind == "trade" and qty:
                out = x.apply_market(t, TradePrinted(0, t, t, P0 + off, qty, side))
            elif kind == "top":
                bid = P0 + min(off, 5)
                out = x.apply_market(t, TopOfBookUpdated(0, t, uid, bid, 1 + qty, bid + 1, 1 + qty))
            else:
                out = x.apply_market(
                    t, BookDeltaReceived(0, t, uid, uid, uid - 1, [P0 + min(off, 0), qty], [])
                )
        for e in out:
            if isinstance(e, OrderFilled):
                signed_fills += e.qty if e.side is BUY else -e.qty
                fill_by_order[e.client_id] = fill_by_order.get(e.client_id, 0) + e.qty
                assert fill_by_order[e.client_id] <= e.order_qty
                assert e.cum_qty == fill_by_order[e.client_id]
        for o in x.orders.values():
            assert o.ahead >= 0 and 0 <= o.filled < o.qty
        assert x.positions[0].qty == signed_fills


def test_a_funding_time_is_settled_once_even_while_the_stream_still_announces_it():
    x = exchange()
    place(x, "a", BUY, P0 + 1, 2, tif=GTC)
    due = 8 * 3600 * 10**9
    x.apply_market(1, MarkPriceUpdated(0, due - 5, 61800_00000000, 0, 10_000, due))
    first = x.apply_market(2, MarkPriceUpdated(0, due + 1, 61800_00000000, 0, 10_000, due))
    again = x.apply_market(3, MarkPriceUpdated(0, due + 2, 61800_00000000, 0, 10_000, due))
    assert sum(isinstance(e, FundingSettled) for e in first) == 1
    assert again == []


def test_a_batch_counts_5_per_10s_and_1_per_minute_checked_before_counting():
    from replay.sim._config import RateLimitConfig
    from replay.sim._ratelimit import RateLimiter
    from replay.sim._rules import Reject

    lim = RateLimiter(RateLimitConfig(orders_per_10s=300, orders_per_minute=1200))
    t = 1_000_000_000
    lim.charge(t, 0, 298, 298)
    with pytest.raises(Reject) as e:
        lim.charge(t, 5, 5, 1)  # 298 + 5 > 300: refused, nothing counted
    assert e.value.code == -1015 and (lim.orders_10s, lim.orders_1m, lim.weight_1m) == (298, 298, 0)
    lim.charge(t, 5, 2, 1)
    assert (lim.orders_10s, lim.orders_1m) == (300, 299)
