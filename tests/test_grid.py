"""The grid against ref/opensqt.md §8's parity scenarios, and each OpenSQT bug we fix (§7).

Where a test asserts fixed behaviour, its docstring says which OpenSQT behaviour it replaces.
"""

from __future__ import annotations

import pytest

from engine import ConfigError, load_engine_config
from engine._events import OpenOrderRow, OperatorCommanded, Side, TimeInForce
from engine._intents import RaiseAlert
from engine.strategies.grid import Lock

from .grid_harness import (
    Y0,
    GridHarness,
    cancels,
    decisions,
    lots,
    places,
    px,
    summary,
    timer_intents,
)

BUY, SELL = "BUY", "SELL"


def first_window() -> tuple[GridHarness, list]:
    h = GridHarness()
    out = h.trade("3000.50")
    h.ack_all(out)
    return h, out


# -- §8 parity scenarios ------------------------------------------------------------------------


def test_s1_no_orders_before_the_first_price_change() -> None:
    h = GridHarness(start=False)
    out = h.trade("3000.00")
    out += h.snapshot()
    assert places(out) == []
    assert h.grid.phase == "running"


def test_s2_first_window() -> None:
    _, out = first_window()
    assert summary(out) == [
        (BUY, "3000.00", 10, False),
        (BUY, "2998.00", 10, False),
        (BUY, "2996.00", 10, False),
        (BUY, "2994.00", 10, False),
        (BUY, "2992.00", 10, False),
    ]
    assert all(p.tif is TimeInForce.GTX for p in places(out))


def test_s3_safety_buffer() -> None:
    h = GridHarness()
    assert [s[1] for s in summary(h.trade("3000.10"))] == [
        "2998.00",
        "2996.00",
        "2994.00",
        "2992.00",
    ]
    h = GridHarness()
    # 0.55 of an interval rounds up: G = 3002, which is skipped by the buffer
    assert [s[1] for s in summary(h.trade("3001.10"))] == [
        "3000.00",
        "2998.00",
        "2996.00",
        "2994.00",
    ]


def test_s4_buy_fill_then_sell_one_interval_up() -> None:
    h, _ = first_window()
    h.fill(h.find(Side.BUY, "3000.00"))
    h.fill(h.find(Side.BUY, "2998.00"))
    out = h.trade("2997.50")
    assert summary(out) == [
        (BUY, "2990.00", 10, False),
        (SELL, "3000.00", 10, True),  # slot 2998 first: distance 0.5 < 2.5
        (SELL, "3002.00", 10, True),
    ]
    tags = [p.tag for p in places(out)]
    assert tags[1:] == ["g:299800:X:L", "g:300000:X:L"]  # the tag names the slot, not the price


def test_s5_sell_fill_rearms_the_level() -> None:
    h, _ = first_window()
    h.fill(h.find(Side.BUY, "3000.00"))
    h.fill(h.find(Side.BUY, "2998.00"))
    h.ack_all(h.trade("2997.50"))
    h.fill(h.find(Side.SELL, "3000.00"))
    slot = h.grid.legs[0].slots.get(px("2998.00"))
    assert slot is None or (slot.lock is Lock.FREE and not slot.holding)
    # (2999 - 3000) / 2 = -0.5 rounds half away to -1: G = 2998, which gets its buy back
    assert summary(h.trade("2999.00")) == [(BUY, "2998.00", 10, False)]


def test_s6_rising_price_does_not_cancel_buys() -> None:
    h, _ = first_window()
    out = h.trade("3010.50")
    assert [s[1] for s in summary(out)] == ["3010.00", "3008.00", "3006.00", "3004.00", "3002.00"]
    assert cancels(out) == []
    assert len(h.open()) == 10


def test_s7_quota_cap() -> None:
    h = GridHarness(order_cleanup_threshold=50, cleanup_batch_size=20, buy_window_size=50)
    h.ack_all(h.trade("3000.50"))  # 50 buys: 3000 down to 2902
    assert len(h.open()) == 50
    for price in ("2902.00", "2904.00"):
        h.cancel_event(h.find(Side.BUY, price))
    # 48 active; a tick that wants 5 new buys gets 2; sells get min(S, 50-48-2) = 0
    out = h.trade("3010.50")
    assert len(places(out)) == 2


def test_s8_sell_ordering_and_per_tick_cap() -> None:
    # 8 filled slots without orders at 2984 ... 2998: adopt them through a snapshot
    h2 = GridHarness(start=False)
    h2.trade("2990.00")
    h2.snapshot(position=lots("0.080"), entry="2984.00")
    assert h2.grid.ledger_position() == 80
    held = sorted(p for p, s in h2.grid.legs[0].slots.items() if s.holding)
    assert held == [px(x) for x in ("2984", "2986", "2988", "2990", "2992", "2994", "2996", "2998")]
    out = h2.trade("2990.00")
    sells = [p for p in places(out) if p.side is Side.SELL]
    # slots by distance 0, 2, 2, 4, 4 (ties: lower slot first)
    assert [p.tag.split(":")[1] for p in sells] == [
        "299000",
        "298800",
        "299200",
        "298600",
        "299400",
    ]
    # slot 2986's exit at 2988 would be below the market (OpenSQT places it anyway, §7.12):
    # it goes to the first lattice price above the market instead
    assert [p.price for p in sells] == [px(x) for x in ("2992", "2990", "2994", "2992", "2996")]


def test_s9_sell_window_upper_bound_both_versions() -> None:
    for rule, expected in (("v3.3.1", ["2992.00"]), ("upstream", [])):
        h = GridHarness(start=False, sell_window_rule=rule, buy_window_size=1)
        h.trade("2980.00")
        h.snapshot(position=10, entry="2990.00")
        out = h.trade("2980.00")
        assert [s[1] for s in summary(out) if s[0] == SELL] == expected, rule


def test_s10_exit_below_market_goes_above_it() -> None:
    """OpenSQT: SELL @2952 for slot 2950 at P=3000 -> taker after 3 GTX refusals. Fixed: the
    exit rests at 3002, the first lattice price above the market, as a maker."""
    h = GridHarness(start=False, buy_window_size=1)
    h.trade("3000.00")
    h.snapshot(position=10, entry="2950.00")
    out = h.trade("3000.00")
    assert [s for s in summary(out) if s[0] == SELL] == [(SELL, "3002.00", 10, True)]


def test_s10_post_only_refusals_fall_back_to_gtc_after_three() -> None:
    h = GridHarness(buy_window_size=1)
    tifs = []
    for _ in range(4):
        out = h.trade("3000.50")
        (p,) = places(out)
        tifs.append(p.tif)
        h.reject(p.client_id, -5022)
    assert tifs == [TimeInForce.GTX] * 3 + [TimeInForce.GTC]


def test_s11_dust_is_merged_not_stuck() -> None:
    """OpenSQT: a cancelled partial buy of 0.004 (11.99 < 20) stays FILLED forever and its level
    is lost. Fixed: it is merged into the nearest filled slot above, which exits both."""
    h, _ = first_window()
    h.fill(h.find(Side.BUY, "2998.00"))  # slot 2998 full
    b2996 = h.find(Side.BUY, "2996.00")
    h.fill(b2996, qty=4)
    assert h.grid.legs[0].slots[px("2996")].lock is Lock.LOCKED
    h.cancel_event(b2996)
    out = h.trade("2997.00")
    merge = decisions(out, "merge_dust")
    assert len(merge) == 1 and "2996.00 into slot 2998.00" in merge[0].message
    sells = [s for s in summary(out) if s[0] == SELL]
    assert sells == [(SELL, "3000.00", 14, True)]
    assert h.grid.ledger_position() == 14
    # slot 2996 is free again and gets re-bought
    assert (BUY, "2996.00", 10, False) in summary(h.trade("2997.10"))


def test_s11_dust_with_no_neighbour_raises_one_alert() -> None:
    h = GridHarness(buy_window_size=1)
    (p,) = places(h.trade("3000.50"))
    o = h.state.order(p.client_id)
    h.ack(o)
    h.fill(o, qty=4)
    h.cancel_event(o)
    out = h.trade("3000.40") + h.trade("3000.30")
    alerts = [i for i in out if isinstance(i, RaiseAlert) and i.code == "grid_dust"]
    assert len(alerts) == 1
    assert not [s for s in summary(out) if s[0] == SELL]


def test_s12_stale_update_ignored() -> None:
    h, _ = first_window()
    buy = h.find(Side.BUY, "2998.00")
    h.fill(buy)
    h.ack_all(h.trade("2999.10"))
    slot = h.grid.legs[0].slots[px("2998")]
    assert slot.order.name == "EXIT"
    before = slot.describe()
    h.cancel_event(buy)  # a late CANCELED for the old buy
    assert slot.describe() == before


def test_s14_instant_fill_before_the_ack() -> None:
    h = GridHarness(buy_window_size=3)
    out = h.trade("3000.50")
    b2996 = h.state.order(places(out)[2].client_id)
    h.fill(b2996)  # the user stream beats the REST reply
    h.ack(b2996)
    slot = h.grid.legs[0].slots[px("2996")]
    assert (slot.lock, bool(slot.holding), slot.client_id) == (Lock.FREE, True, "")
    assert [s for s in summary(h.trade("2996.50")) if s[0] == SELL] == [(SELL, "2998.00", 10, True)]


def test_s20_client_ids_are_binance_valid_and_map_back_to_their_slot() -> None:
    """OpenSQT encodes the slot price in the id and parses it back with the current precision
    (wrong after a precision change). Here the id is journal-derived and the slot is in the
    order's tag, journaled with the intent."""
    import re

    _, out = first_window()
    for p in places(out):
        assert re.fullmatch(r"[\.A-Z\:/a-z0-9_-]{1,36}", p.client_id)
        assert p.tag == f"g:{p.price}:E:L"


def test_s21_stop_cancels_own_orders_only() -> None:
    """OpenSQT's cancel_on_exit cancels every open order of the symbol, manual ones included."""
    h, _ = first_window()
    manual = OpenOrderRow(0, "web_manual_1", 1, Side.BUY, px("2900"), 10, 0, TimeInForce.GTC, False)
    h.snapshot(
        orders=[manual]
        + [
            OpenOrderRow(
                0, o.client_id, o.order_id, o.side, o.price, o.qty, 0, o.tif, o.reduce_only
            )
            for o in h.open().values()
        ]
    )
    out = h.feed(OperatorCommanded("stop"))
    assert len(cancels(list(out))) == 5
    assert all(c.client_id != "web_manual_1" for c in cancels(list(out)))
    assert h.grid.phase == "halted"
    h2, _ = first_window()
    h2.grid.config = h2.grid.config.__class__(**{**_cfg_fields(h2), "cancel_on_exit": False})
    assert cancels(list(h2.feed(OperatorCommanded("stop")))) == []


def _cfg_fields(h: GridHarness) -> dict:
    import msgspec

    return {f: getattr(h.grid.config, f) for f in h.grid.config.__struct_fields__} | {
        "risk_control": msgspec.structs.replace(h.grid.config.risk_control)
    }


def test_s22_error_classification() -> None:
    # generic refusal: the slot is free again and retried on the next price
    h = GridHarness(buy_window_size=1)
    (p,) = places(h.trade("3000.50"))
    h.reject(p.client_id, -1003)
    assert len(places(h.trade("3000.40"))) == 1
    # -4061: OpenSQT exits on the spot leaving orders live; here: cancel ours, halt, say why
    h, _ = first_window()
    (p,) = places(h.trade("3002.50"))
    out = h.reject(p.client_id, -4061)
    assert len(cancels(out)) == 5
    assert h.grid.phase == "halted" and "hedge mode" in h.grid.halt_reason
    assert places(h.trade("3005.00")) == []


# -- the fixes (§7) ---------------------------------------------------------------------------


def test_margin_lock_blocks_entries_but_not_exits() -> None:
    """OpenSQT's margin lock stops sells too, and cancels all buys in a loop (§7.15)."""
    h, _ = first_window()
    (p,) = [x for x in places(h.trade("3002.60")) if x.side is Side.BUY]
    out = h.reject(p.client_id, -2019)
    assert decisions(out, "margin_lock") and cancels(out) == []
    h.fill(h.find(Side.BUY, "3000.00"))
    out = h.trade("3003.00")
    assert summary(out) == [(SELL, "3004.00", 10, True)]  # exits go on, entries wait
    h.feeder.t += 21 * 10**9
    assert any(s[0] == BUY for s in summary(h.trade("3003.10")))


def test_duplicate_and_late_terminal_events_do_not_double_count() -> None:
    """OpenSQT adopts a repeated FILLED after the slot cleared its id and adds the qty again."""
    h, _ = first_window()
    b = h.find(Side.BUY, "2998.00")
    h.fill(b)
    h.fill(b, qty=10)  # a repeated push (new trade id) of an already-filled order
    h.cancel_event(b)  # and a late cancel
    assert h.grid.ledger_position() == 10
    assert h.state.position(0).qty == 10


def test_interval_must_be_a_tick_multiple_and_amount_above_min_notional() -> None:
    h = GridHarness(start=False, price_interval="2.005")
    assert h.grid.phase == "halted" and "multiple of" in h.grid.halt_reason
    h = GridHarness(start=False, order_quantity="5")
    assert h.grid.phase == "halted" and "minimum order value" in h.grid.halt_reason


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("price_interval", "0", "price_interval must be positive"),
        ("price_interval", "-1", "price_interval must be positive"),
        ("buy_window_size", 0, "buy_window_size"),
        ("order_quantity", "0", "order_quantity"),
        ("mode", "sideways", "mode"),
        ("leverage", 20, "max_leverage"),
        ("anchor", "somewhere", "anchor"),
        ("cleanup_batch_size", 60, "cleanup_batch_size"),
        ("risk_control", {"enabled": True, "interval": "7m"}, "interval"),
        ("risk_control", {"monitor_symbols": []}, "monitor_symbols"),
        ("typo_key", 1, "typo_key"),
    ],
)
def test_config_errors_are_one_line(key: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_engine_config({"strategy": {**Y0, key: value}})
    assert "\n" not in str(e.value) and words in str(e.value)


def test_startup_safety_check_refuses_with_the_numbers() -> None:
    h = GridHarness(start=False, position_safety_check=100, leverage=1)
    h.trade("3000.00")
    out = h.snapshot(balance="1000")  # 1000 x 1 / 30 = 33 levels < 100
    assert h.grid.phase == "halted"
    (msg,) = [i.message for i in out if isinstance(i, RaiseAlert)]
    assert "33 levels" in msg and "position_safety_check 100" in msg
    # fees: I*(1-f) must beat 2*f*P -> 2 at 3000 needs f < 0.000333
    h = GridHarness(start=False, fee_rate="0.0004")
    h.trade("3000.00")
    h.snapshot()
    assert h.grid.phase == "halted" and "fees" in h.grid.halt_reason
    h = GridHarness(start=False, fee_rate="0.0003")
    h.trade("3000.00")
    h.snapshot()
    assert h.grid.phase == "running"


def test_restart_adopts_real_position_and_open_orders() -> None:
    """OpenSQT re-slices a position at A+I, A+2I… ignoring its entry, and neither adopts nor
    cancels open orders (§1.8, §7.8). Here a new session adopts the position at its real entry
    and takes over its own orders; an unknown order with our prefix that fits no slot is
    cancelled, a manual one left alone."""
    h = GridHarness(start=False, anchor="aligned")
    h.trade("2990.00")
    ours = OpenOrderRow(0, "r0-5-0", 77, Side.BUY, px("2986"), 10, 0, TimeInForce.GTX, False)
    stray = OpenOrderRow(0, "r0-6-0", 78, Side.BUY, px("2985.55"), 10, 0, TimeInForce.GTX, False)
    manual = OpenOrderRow(0, "manual-1", 79, Side.BUY, px("2900"), 10, 0, TimeInForce.GTC, False)
    out = h.snapshot(position=25, entry="2991.30", orders=[ours, stray, manual])
    legs = h.grid.legs[0].slots
    # 25 lots at entry 2991.30: slices of 10 from 2992 up; the 5-lot tail is too small alone
    assert {p: s.qty for p, s in legs.items() if s.holding} == {px("2992"): 10, px("2994"): 15}
    assert legs[px("2986")].client_id == "r0-5-0"
    assert [c.client_id for c in cancels(out)] == ["r0-6-0"]
    assert any(d.action == "leave_foreign" for d in decisions(out))
    sells = [s for s in summary(h.trade("2990.10")) if s[0] == SELL]
    assert sells == [(SELL, "2994.00", 10, True), (SELL, "2996.00", 15, True)]


def test_reconcile_settles_orders_lost_by_the_stream_after_two_snapshots() -> None:
    """OpenSQT's reconciler only logs (§7.1): a slot whose terminal event was lost stays
    LOCKED forever. Here two snapshots without the order settle it and the slot re-arms."""
    h, _ = first_window()
    b = h.find(Side.BUY, "2998.00")
    rows = [
        OpenOrderRow(0, o.client_id, o.order_id, o.side, o.price, o.qty, 0, o.tif, False)
        for o in h.open().values()
        if o is not b
    ]
    out = h.snapshot(orders=rows)
    assert decisions(out, "settle_missing") == []
    out = h.snapshot(orders=rows)
    assert [d.message.split()[0] for d in decisions(out, "settle_missing")] == [b.client_id]
    assert px("2998") not in h.grid.legs[0].slots or not h.grid.legs[0].slots[px("2998")].client_id
    # the buy filled without our hearing it: the position says so, and the ledger follows
    h.snapshot(orders=rows, position=10, entry="2998.00")
    out = h.snapshot(orders=rows, position=10, entry="2998.00")
    assert decisions(out, "adopt_holding")
    assert h.grid.ledger_position() == 10


def test_reduce_only_refusal_holds_exits_until_reconciled() -> None:
    h, _ = first_window()
    h.fill(h.find(Side.BUY, "3000.00"))
    (sell,) = [p for p in places(h.trade("3001.00")) if p.side is Side.SELL]
    out = h.reject(sell.client_id, -2022)  # position gone (ADL)
    assert decisions(out, "hold_exits")
    assert [s for s in summary(h.trade("3001.10")) if s[0] == SELL] == []
    h.snapshot(position=0)  # a first snapshot: one disagreement is not acted on
    h.snapshot(position=0)
    assert h.grid.ledger_position() == 0


def test_short_mode_mirrors_long() -> None:
    h = GridHarness(mode="short")
    out = h.trade("2999.50")
    assert summary(out) == [
        (SELL, "3000.00", 10, False),
        (SELL, "3002.00", 10, False),
        (SELL, "3004.00", 10, False),
        (SELL, "3006.00", 10, False),
        (SELL, "3008.00", 10, False),
    ]
    h.ack_all(out)
    h.fill(h.find(Side.SELL, "3000.00"))
    out = h.trade("3000.50")
    assert (BUY, "2998.00", 10, True) in summary(out)
    assert h.grid.ledger_position() == -10


def test_neutral_mode_quotes_both_sides_without_reduce_only() -> None:
    h = GridHarness(mode="neutral", buy_window_size=2)
    out = h.trade("3000.90")
    # G = 3000: each leg's window starts there; 3000 is too close for the short leg's buffer
    assert summary(out) == [
        (BUY, "3000.00", 10, False),
        (BUY, "2998.00", 10, False),
        (SELL, "3002.00", 10, False),
    ]


def test_price_events_are_coalesced() -> None:
    h = GridHarness(price_send_interval=50)
    out = h.trade("3000.50")
    assert places(out) == [] and len(timer_intents(out)) == 1
    out = h.trade("3000.60") + h.trade("3000.70")
    assert places(out) == [] and timer_intents(out) == []
    out = h.fire_timers()
    assert len(places(out)) == 5


def test_cleaner_cancels_farthest_first() -> None:
    h = GridHarness(order_cleanup_threshold=6, cleanup_batch_size=2, buy_window_size=6)
    h.ack_all(h.trade("3000.50"))
    h.feeder.t += 61 * 10**9
    out = h.fire_timers()
    assert sorted(c.client_id for c in cancels(out)) == sorted(
        [h.find(Side.BUY, "2990.00").client_id, h.find(Side.BUY, "2992.00").client_id]
    )
    assert decisions(out, "clean")


def test_risk_monitor_trips_on_a_spike_and_recovers_with_one_symbol() -> None:
    """OpenSQT cannot recover with fewer than 3 symbols when recovery_threshold is unset, fails
    open without data and suspends exits while triggered (§7.18)."""
    h = GridHarness(
        start=False,
        risk_control={
            "enabled": True,
            "monitor_symbols": ["BTCUSDT"],
            "interval": "1m",
            "average_window": 3,
        },
    )
    h.trade("3000.00")
    h.snapshot()
    # no candles yet: fail closed
    out = h.trade("3000.50")
    assert places(out) == [] and decisions(out, "hold_entries")
    for k in range(4):
        h.kline(1, k * 60, "3000.50", "1.0")
    out = h.trade("3000.60")
    assert len(places(out)) == 5 and decisions(out, "resume_entries")
    h.ack_all(out)
    h.fill(h.find(Side.BUY, "3000.00"))
    out = h.kline(1, 240, "2990.00", "10.0")  # below the average close on 10x volume
    assert decisions(out, "trip") and len(cancels(out)) == 4
    for c in cancels(out):
        h.cancel_event(h.state.order(c.client_id))
    out = h.trade("2999.00")
    assert [s[0] for s in summary(out)] == [SELL]  # exits continue, entries held
    out = h.kline(1, 300, "3001.00", "1.0")
    assert decisions(out, "recover")
    assert any(s[0] == BUY for s in summary(h.trade("3000.70")))


def test_risk_monitor_fails_closed_when_candles_stop() -> None:
    h = GridHarness(
        start=False,
        risk_control={
            "enabled": True,
            "monitor_symbols": ["BTCUSDT"],
            "interval": "1m",
            "average_window": 2,
        },
    )
    h.trade("3000.00")
    h.snapshot()
    for k in range(3):
        h.kline(1, k * 60, "3000.50", "1.0")
    assert places(h.trade("3000.50"))
    h.feeder.t += 3 * 60 * 10**9
    out = h.trade("3003.50")
    assert places(out) == [] and "stale" in decisions(out, "hold_entries")[0].message


def test_the_shared_risk_service_guards_grid_orders() -> None:
    """Issue 5's risk service sits in front of every grid order: the worst-case position cap
    stops entries (each denial journaled), exits that reduce the position still pass, and a
    fill of a non-grid order (a risk flatten, a manual close) moves the ledger with it."""
    h = GridHarness(risk={"max_position": "0.020"})
    out = h.trade("3000.50")
    assert len(places(out)) == 2
    denials = [d for d in decisions(out) if d.category == "risk" and d.action == "deny"]
    assert denials and "max_position" in denials[0].code
    h.ack_all(out)
    h.fill(h.find(Side.BUY, "3000.00"))
    h.fill(h.find(Side.BUY, "2998.00"))
    out = h.trade("2999.00")
    assert [s[0] for s in summary(out)] == [SELL, SELL]
    assert h.grid.ledger_position() == 20
    # a flatten by the risk service is not a grid order; the ledger follows the position
    from engine._events import OrderFilled

    fill = OrderFilled(0, "x", 9, 99, Side.SELL, px("2999"), 10, 10, 10, 0, "USDT", False, 0)
    out = list(h.feed(fill))
    # both holdings have live exits: the nearest is cancelled, the drop lands when it ends
    (cancel,) = cancels(out)
    assert decisions(out, "cancel_exit")
    h.cancel_event(h.state.order(cancel.client_id))
    assert h.grid.ledger_position() == h.state.position(0).qty == 10


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("price_interval", "0.05", "not a multiple of BTCUSDT's tick 0.10"),
        ("order_quantity", "5", "below BTCUSDT's minimum order value 10"),
        ("anchor", "100.05", "not on BTCUSDT's tick grid"),
    ],
)
def test_config_loader_checks_the_exchange_rules(key: str, value: str, words: str) -> None:
    from tools._config import parse_config

    strategy = {**Y0, "symbol": "BTCUSDT", "price_interval": "40", "anchor": "aligned"}
    with pytest.raises(ConfigError, match=words):
        parse_config({"strategy": {**strategy, key: value}})
