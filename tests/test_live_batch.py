"""``order_entry: rest_batch``: new orders of one step go out in ``batchOrders`` requests.

Against the local exchange over loopback sockets. The venue on its own (a stand-in for the
runtime collects what it emits): per-item answers become the same events as single orders'
(ack, or a rejection with the item's code, for exactly those ids); a batch that times out or
gets a 5xx makes every item "unknown status", each resolved by querying its client id — found
or, once its recvWindow has passed, absent — and never resent. Then the whole runtime: a grid
places its ladder through batches, the first of them timed out (placed), with 0 lost fills,
0 duplicate orders, nothing left open and a journal that replays bit for bit. No timed
assertions: every wait is for a condition, under a generous ``fail_after``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
import trio

pytest.importorskip("adapters.local_exchange._server")

from adapters.live import ExchangeVenue, LiveConfig, Runtime
from adapters.live._venue import BATCH_MAX
from adapters.local_exchange import ExchangeConfig, ExchangeServer, open_exchange
from engine import (
    CancelOrder,
    CancelRejected,
    IntentRecord,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
)
from journal import JournalReader
from replay import load_sim_config, verify
from tests.test_live_e2e import CREDS, _run, check_consistent, endpoints, exchange_truth

BATCH = ("POST", "/fapi/v1/batchOrders")


def count_requests(ex: ExchangeServer) -> Counter[tuple[str, str]]:
    """Count the exchange's REST requests by (method, path), on the exchange side."""
    seen: Counter[tuple[str, str]] = Counter()
    rest = ex.core.rest

    def counted(method: str, path: str, *args: Any, **kw: Any) -> Any:
        seen[(method, path)] += 1
        return rest(method, path, *args, **kw)

    ex.core.rest = counted  # type: ignore[method-assign]
    return seen


@dataclass
class FakeRuntime:
    """What the venue needs of the runtime: events are collected, background tasks run."""

    nursery: trio.Nursery
    instruments: dict[int, Any]
    events: list[Any] = field(default_factory=list)
    latencies: list[int] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT"])

    def __post_init__(self) -> None:
        self.engine = SimpleNamespace(state=SimpleNamespace(order=lambda cid: None))

    async def emit(self, ev: Any, t0_ns: int = 0) -> None:
        self.events.append(ev)

    def clock(self) -> int:
        return 0

    def log(self, text: str) -> None:
        self.logs.append(text)

    def nursery_start(self, fn: Any, *args: Any) -> None:
        self.nursery.start_soon(fn, *args)

    def by_id(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ev in self.events:
            cid = getattr(ev, "client_id", None)
            if cid is not None:
                out.setdefault(cid, []).append(type(ev).__name__)
        return out


def live_config(port: int, **live: Any) -> LiveConfig:
    settings = {"order_entry": "rest_batch", "timeout_s": 2.0, "recv_window_ms": 1000, **live}
    return msgspec.convert(
        {**settings, "mainnet": msgspec.to_builtins(endpoints(port))}, LiveConfig
    )


async def _venue(ex: ExchangeServer, nursery: trio.Nursery) -> tuple[ExchangeVenue, FakeRuntime]:
    venue = ExchangeVenue(endpoints(ex.port), live_config(ex.port), CREDS)
    (spec,) = await venue.instruments(["BTCUSDT"])
    rt = FakeRuntime(nursery, {spec.inst: spec})
    venue._learn(rt)  # type: ignore[arg-type]
    await venue.rest.sync_time()
    return venue, rt


async def _step(venue: ExchangeVenue, orders: list[PlaceOrder]) -> None:
    """What the runtime does with one step's intents: ``begin`` each, run what it returns."""
    begun = [venue.begin(p, 0) for p in orders]
    assert all(b is not None for b in begun)
    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            for b in begun:
                n.start_soon(lambda b=b: b)


def _buy(cid: str, price: int, qty: int = 2, tif: TimeInForce = TimeInForce.GTX) -> PlaceOrder:
    return PlaceOrder(0, cid, Side.BUY, price, qty, tif, OrderType.LIMIT, False)


async def _book(ex: ExchangeServer) -> tuple[int, int]:
    ex.pump(200)
    bid, ask = ex.core.sim.markets[0].best()
    assert bid and ask
    return bid, ask


def test_items_answer_like_single_orders_and_rejects_name_exactly_their_ids():
    result: dict[str, Any] = {}

    async def main() -> None:
        async with (
            open_exchange(ExchangeConfig(seed=11, feed="manual")) as ex,
            trio.open_nursery() as nursery,
        ):
            seen = count_requests(ex)
            bid, ask = await _book(ex)
            venue, rt = await _venue(ex, nursery)
            orders = [
                _buy("b-ok-1", bid - 10),
                _buy("b-gtx", ask + 10),  # a post-only buy above the ask: -5022
                _buy("b-ok-2", bid - 20),
                _buy("b-small", bid // 10, qty=1),  # 0.001 BTC at ~6k: under 10 USDT, -4164
                _buy("b-ok-3", bid - 40),
                _buy("b-ok-4", bid - 50),  # a sixth and seventh: a second batch
                _buy("b-gtx-2", ask, tif=TimeInForce.GTX),  # at the ask: takes, -5022
            ]
            await _step(venue, orders)
            # a lone order of a step goes alone (a batch costs 5 on the 10 s order count)
            await _step(venue, [_buy("b-alone", bid - 60)])
            result.update(
                seen=dict(seen),
                events=rt.by_id(),
                rejects={e.client_id: e.code for e in rt.events if type(e) is OrderRejected},
                stats=dict(venue.stats),
                locks=len(venue._locks),
                budget=venue.rest.budget.describe(),
                truth=await exchange_truth(ex.port),
            )
            await venue.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)
    print("batch answers:", result["stats"], result["seen"].get(BATCH), result["rejects"])
    assert result["seen"][BATCH] == 2  # 7 orders: 5 + 2
    assert result["seen"][("POST", "/fapi/v1/order")] == 1  # the lone one
    assert result["rejects"] == {"b-gtx": -5022, "b-small": -4164, "b-gtx-2": -5022}
    for cid in ("b-ok-1", "b-ok-2", "b-ok-3", "b-ok-4", "b-alone"):
        assert result["events"][cid] == ["OrderAccepted"], cid
    assert result["stats"]["batches"] == 2 and result["stats"]["batched_orders"] == 7
    assert result["stats"]["orders_sent"] == 8 and result["stats"]["unknown"] == 0
    assert result["locks"] == 0
    # the exchange's order count: 5 per batch + 1 for the single order on the 10 s window
    assert result["budget"]["orders_10s"] == 11 and result["budget"]["orders_1m"] == 3
    on_exchange = sorted(o["clientOrderId"] for o in result["truth"]["orders"])
    assert on_exchange == ["b-alone", "b-ok-1", "b-ok-2", "b-ok-3", "b-ok-4"]


@pytest.mark.parametrize(
    ("mode", "placed"),
    [("timeout", "yes"), ("error500", "yes"), ("unknown", "no"), ("timeout", "some")],
)
def test_a_batch_without_an_answer_is_resolved_item_by_item_never_resent(mode, placed):
    result: dict[str, Any] = {}

    async def main() -> None:
        async with (
            open_exchange(ExchangeConfig(seed=12, feed="manual")) as ex,
            trio.open_nursery() as nursery,
        ):
            seen = count_requests(ex)
            bid, ask = await _book(ex)
            venue, rt = await _venue(ex, nursery)
            ex.faults.fail_orders(mode, 1, placed)
            orders = [_buy(f"u-{i}", bid - 10 * (i + 1)) for i in range(4)]
            orders.append(_buy("u-gtx", ask + 10))  # refused by the exchange even when "placed"
            await _step(venue, orders)
            result.update(
                seen=dict(seen),
                events=rt.by_id(),
                stats=dict(venue.stats),
                locks=len(venue._locks),
                truth=await exchange_truth(ex.port),
                faults=dict(ex.faults.counts),
            )
            await venue.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)
    stats, events = result["stats"], result["events"]
    print(f"batch {mode}/{placed}:", stats, result["faults"])
    assert result["faults"] == {f"order:{mode}": 1}
    assert result["seen"][BATCH] == 1  # never resent
    assert ("POST", "/fapi/v1/order") not in result["seen"]
    assert result["seen"][("GET", "/fapi/v1/order")] >= 5  # each item queried
    assert stats["unknown"] == 5
    assert stats["resolved_found"] + stats["resolved_absent"] == 5
    on_exchange = [o["clientOrderId"] for o in result["truth"]["orders"]]
    assert len(on_exchange) == len(set(on_exchange))  # 0 duplicates
    for i in range(4):
        cid = f"u-{i}"
        # "some": the exchange executed the batch's first half (3 of 5 items: u-0..u-2)
        if placed == "yes" or (placed == "some" and i < 3):
            assert events[cid] == ["OrderStatusUnknown", "OrderAccepted"], cid
            assert cid in on_exchange
        else:
            assert events[cid] == ["OrderStatusUnknown", "OrderRejected"], cid
            assert cid not in on_exchange
    # the item the exchange refused is never found: absent once its recvWindow has passed
    assert events["u-gtx"] == ["OrderStatusUnknown", "OrderRejected"]
    assert "u-gtx" not in on_exchange
    assert stats["resolved_found"] == {"yes": 4, "some": 3, "no": 0}[placed]
    assert result["locks"] == 0


CANCEL_BATCH = ("DELETE", "/fapi/v1/batchOrders")


@pytest.mark.parametrize("fails", [0, 1, 4], ids=["answered", "retried", "gave-up"])
def test_cancels_of_one_step_go_out_in_batches_of_ten(fails):
    """Cancels decided together go out in ``DELETE batchOrders`` requests of up to 10, each
    item answered as a single cancel: 13 (12 resting orders and an id the exchange does not
    know) are two requests, 12 canceled and -2011 for the unknown id. A batch that gets a 500
    is sent again by the REST client (a cancel is idempotent); once its retries are spent,
    each of its cancels goes again on its own. Every order ends canceled."""
    result: dict[str, Any] = {}
    n = 12 if not fails else 10  # with faults: one batch (the fault order is then exact)

    async def main() -> None:
        async with (
            open_exchange(ExchangeConfig(seed=13, feed="manual")) as ex,
            trio.open_nursery() as nursery,
        ):
            bid, _ = await _book(ex)
            venue, rt = await _venue(ex, nursery)
            cids = [f"c-{i}" for i in range(n)]
            orders = [_buy(c, bid - 10 * (i + 1)) for i, c in enumerate(cids)]
            for k in range(0, n, BATCH_MAX):
                await _step(venue, orders[k : k + BATCH_MAX])
            rt.events.clear()
            seen = count_requests(ex)
            ex.faults.fail_orders("error500", fails, "no")
            unknown = [] if fails else ["c-nope"]
            await _step(venue, [CancelOrder(0, c) for c in [*cids, *unknown]])
            result.update(
                seen=dict(seen),
                events=rt.by_id(),
                rejected={e.client_id: e.code for e in rt.events if type(e) is CancelRejected},
                stats=dict(venue.stats),
                locks=len(venue._locks),
                truth=await exchange_truth(ex.port),
            )
            await venue.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)
    seen, stats, events = result["seen"], result["stats"], result["events"]
    print(f"cancel batches (fails {fails}):", stats["cancel_batches"], dict(seen))
    for i in range(n):
        assert events[f"c-{i}"] == ["OrderCanceled"], i
    assert result["truth"]["open"] == []
    assert result["locks"] == 0
    if not fails:
        assert seen[CANCEL_BATCH] == 2 and stats["cancel_batches"] == 2
        assert stats["batched_cancels"] == 13
        assert result["rejected"] == {"c-nope": -2011}
        assert ("DELETE", "/fapi/v1/order") not in seen
    elif fails == 1:
        assert seen[CANCEL_BATCH] == 2 and stats["cancel_batches"] == 1  # the client's retry
        assert ("DELETE", "/fapi/v1/order") not in seen
    else:
        assert seen[CANCEL_BATCH] == 4  # 1 + 3 retries, then each cancel on its own
        assert seen[("DELETE", "/fapi/v1/order")] == 10


# -- the whole runtime: a grid's ladder ---------------------------------------------------

GRID_OVERRIDES = (
    "strategy.risk_control.enabled=false",
    "strategy.price_interval=25",
    "strategy.order_quantity=100",
    "strategy.buy_window_size=10",
    "strategy.sell_window_size=4",
)


def grid_runtime(journal: Path, port: int, cfg: dict[str, Any]) -> Runtime:
    settings = {
        "order_entry": "rest_batch",
        "timeout_s": 2.0,
        "reconcile_s": 3.0,
        "dead_man_refresh_s": 1.0,
        "dead_man_s": 30.0,
        "kline": "",
    }
    cfg = {**cfg, "live": {**settings, "mainnet": msgspec.to_builtins(endpoints(port))}}
    lc = msgspec.convert(cfg["live"], LiveConfig)
    return Runtime(
        config=cfg,
        journal=journal,
        mode="live",
        venue=ExchangeVenue(endpoints(port), lc, CREDS),
        live=lc,
        symbols=["BTCUSDT"],
        install_signals=False,
    )


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_grid_ladder_goes_out_in_batches_and_a_timed_out_batch_is_resolved(tmp_path):
    from tools._cmd_run import _load
    from tools.demo import GRID_CONFIG

    cfg = _load(GRID_CONFIG, GRID_OVERRIDES)
    journal = tmp_path / "live"
    result: dict[str, Any] = {}

    async def main() -> None:
        with trio.fail_after(240):
            ex_cfg = ExchangeConfig(seed=4, sim=load_sim_config(cfg))
            async with open_exchange(ex_cfg) as ex:
                seen = count_requests(ex)
                # the first order request (a batch of the ladder) times out, its orders placed
                ex.faults.fail_orders("timeout", 1, "yes")
                rt = grid_runtime(journal, ex.port, cfg)
                out: dict[str, Any] = {}
                async with trio.open_nursery() as n:
                    await n.start(_run, rt, out)
                    with trio.fail_after(120):
                        while rt.venue.stats["resolved_found"] < 2 or seen[BATCH] < 2:  # noqa: ASYNC110
                            await trio.sleep(0.1)
                    rt.request_stop("test")
                result.update(
                    report=out["report"],
                    seen=dict(seen),
                    locks=len(rt.venue._locks),
                    truth=await exchange_truth(ex.port),
                    faults=dict(ex.faults.counts),
                )

    trio.run(main)
    venue = result["report"].venue
    figures = check_consistent(journal, result["truth"])  # 0 lost, 0 duplicates, 0 left open
    print("grid batch figures:", figures, "batches:", result["seen"].get(BATCH), "venue:", venue)
    assert result["faults"].get("order:timeout") == 1
    # the ladder: the grid's first orders, decided in one step
    ladder = next(
        n
        for rec in JournalReader(journal).records()
        if type(rec) is IntentRecord and (n := sum(type(i) is PlaceOrder for i in rec.intents))
    )
    assert ladder >= 6  # more than one batch's worth
    assert venue["batches"] >= -(-ladder // BATCH_MAX) and venue["batched_orders"] >= ladder
    assert result["seen"][BATCH] == venue["batches"]  # as many on the exchange: none resent
    assert venue["unknown"] >= 2 and venue["resolved_found"] >= 2
    assert result["locks"] == 0
    assert verify(journal).identical


def test_the_rate_budget_wants_room_for_a_whole_batch():
    from adapters.binance._rest import RateBudget, Throttled

    budget = RateBudget(clock=lambda: 100.0)  # 300 / 10 s, stops at 90%: 270
    budget.observe({"x-mbx-order-count-10s": "266", "x-mbx-used-weight-1m": "100"})
    budget.check("/fapi/v1/order", True, False)  # one more order fits
    with pytest.raises(Throttled) as e:
        budget.check("/fapi/v1/batchOrders", True, False, 5, 5)  # five do not
    assert e.value.code == -1015
    budget.observe({"x-mbx-order-count-10s": "265"})
    budget.check("/fapi/v1/batchOrders", True, False, 5, 5)  # 265 + 5 = 270: just fits
    budget.observe({"x-mbx-used-weight-1m": "2156"})  # weight stops at 2160
    budget.check("/fapi/v1/order", True, False, 1, 1)
    with pytest.raises(Throttled):
        budget.check("/fapi/v1/batchOrders", True, False, 5, 5)


def test_an_unknown_outcome_carries_the_timestamp_the_request_went_out_with():
    # after a -1021 the clock is resynced and the batch resent once (refused before matching:
    # safe); if that one times out, its own timestamp — not the first's — bounds the wait
    # before an absent order counts as never placed
    from adapters.binance._rest import OutcomeUnknown, RestClient

    async def main() -> None:
        async with open_exchange(ExchangeConfig(seed=13, feed="manual")) as ex:
            bid, _ = await _book(ex)
            rest = RestClient(
                f"http://127.0.0.1:{ex.port}", CREDS, recv_window_ms=1000, timeout_s=1.0
            )
            try:
                await rest.sync_time()
                ex.faults.skew_ms = 3000  # the server's clock jumps ahead: -1021
                ex.faults.fail_orders("timeout", 1, "yes")
                before = rest.timestamp_ms()
                item = {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "timeInForce": "GTX",
                    "quantity": "0.002",
                    "price": f"{(bid - 10) / 10:.1f}",
                }
                items = [dict(item, newClientOrderId=f"ts-{i}") for i in range(2)]
                with pytest.raises(OutcomeUnknown) as e:
                    await rest.batch_orders(items)
                assert rest.stats["resyncs"] == 2
                assert e.value.timestamp_ms >= before + 2500
                assert ex.faults.counts == {"order:timeout": 1}
            finally:
                await rest.aclose()

    trio.run(main)
