"""Order entry over the WebSocket API, and a 418 ban, end to end against the local exchange.

Same checks as ``test_live_e2e`` (the journal's fills equal the exchange's, no client order id
twice, nothing left open after a clean stop, the journal replays bit for bit). No timed
assertions: every wait is for a condition, under a generous ``fail_after``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio

pytest.importorskip("adapters.local_exchange._server")

from adapters.local_exchange._server import ExchangeConfig, serve_exchange
from replay import verify
from tests.test_live_e2e import _run, check_consistent, exchange_truth, runtime


async def _wait_for(pred: Any) -> None:
    with trio.fail_after(120):
        while not pred():  # noqa: ASYNC110 - polls runtime state, there is no event for it
            await trio.sleep(0.05)


def _accepted(rt: Any) -> int:
    return rt.venue.stats["orders_sent"]


async def _wait_for_orders(port: int, n: int) -> int:
    """Wait until the exchange holds at least ``n`` of our orders (any status); their count."""
    with trio.fail_after(120):
        while True:
            have = len((await exchange_truth(port))["orders"])
            if have >= n:
                return have
            await trio.sleep(0.2)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ws_api_order_entry_end_to_end(tmp_path):
    journal = tmp_path / "live"
    result: dict[str, Any] = {}

    async def main() -> None:
        with trio.fail_after(240):
            async with trio.open_nursery() as nursery:
                ex = await nursery.start(serve_exchange, ExchangeConfig(seed=4))
                rt = runtime(journal, ex.port, order_entry="ws_api")
                out: dict[str, Any] = {}
                async with trio.open_nursery() as n:
                    await n.start(_run, rt, out)
                    have = await _wait_for_orders(ex.port, 10)
                    # a dropped WS-API connection: requests in flight become unknown outcomes
                    ex.drop_ws("ws-api")
                    await _wait_for_orders(ex.port, have + 5)
                    rt.request_stop("test")
                result["report"] = out["report"]
                result["ws_api"] = dict(rt.venue.ws_api.stats)
                # one lock per client order id while a request for it is in flight, not forever
                result["locks_left"] = len(rt.venue._locks)
                result["truth"] = await exchange_truth(ex.port)
                nursery.cancel_scope.cancel()

    trio.run(main)
    figures = check_consistent(journal, result["truth"])
    ws = result["ws_api"]
    print("ws-api figures:", figures, "ws-api:", ws, "venue:", result["report"].venue)
    assert figures["orders"] >= 15
    # every order went over the WebSocket API (REST only for reads, cancels and cancel-all)
    assert ws["requests"] >= figures["orders"]
    assert ws["reconnects"] >= 1
    assert result["locks_left"] == 0
    # the requests were written in the consumer's step, not a scheduler round later
    assert result["report"].venue["written_in_step"] >= figures["orders"] // 2
    assert verify(journal).identical


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_418_ban_backs_off_and_recovers_without_duplicates(tmp_path):
    journal = tmp_path / "live"
    result: dict[str, Any] = {}

    async def main() -> None:
        with trio.fail_after(240):
            async with trio.open_nursery() as nursery:
                ex = await nursery.start(serve_exchange, ExchangeConfig(seed=6))
                rt = runtime(journal, ex.port)
                budget = rt.venue.rest.budget
                out: dict[str, Any] = {}
                async with trio.open_nursery() as n:
                    await n.start(_run, rt, out)
                    await _wait_for(lambda: _accepted(rt) >= 5)
                    ex.ban(5)
                    # the runtime keeps deciding; the first request after the ban gets a 418
                    await _wait_for(lambda: budget.stats["418"] >= 1)
                    # and then it backs off: requests are refused locally until Retry-After
                    await _wait_for(lambda: budget.stats["throttled_locally"] >= 1)
                    # recovers: orders reach the exchange again once the ban is over (the
                    # loop fails after 120 s if they never do)
                    await _wait_for(lambda: time.monotonic() > budget.banned_until + 0.5)
                    before = len((await exchange_truth(ex.port))["orders"])
                    await _wait_for_orders(ex.port, before + 5)
                    rt.request_stop("test")
                result["report"] = out["report"]
                result["budget"] = dict(budget.stats)
                result["faults"] = dict(ex.faults.counts)
                result["truth"] = await exchange_truth(ex.port)
                nursery.cancel_scope.cancel()

    trio.run(main)
    figures = check_consistent(journal, result["truth"])  # 0 lost, 0 duplicates, 0 left open
    print("418 figures:", figures, "budget:", result["budget"], "faults:", result["faults"])
    assert result["budget"]["418"] >= 1 and result["budget"]["throttled_locally"] >= 1
    assert verify(journal).identical
