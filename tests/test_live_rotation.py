"""The 23 h stream rotation against the local exchange, on real sockets: a market stream and
the user stream replace their connection without a gap (no DOWN, nothing lost, nothing twice,
nothing out of order), a market stream keeps the old one when the new one cannot be opened,
and a live session rotating every second never reports a stream down."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

import httpx
import msgspec
import pytest
import trio

pytest.importorskip("adapters.local_exchange._server")

from adapters.binance import MarketParser, _streams, instrument_from_symbol_info
from adapters.binance._rest import RestClient
from adapters.binance._sign import Credentials
from adapters.binance._streams import (
    StreamConfig,
    market_stream_urls,
    run_market_stream,
    run_user_stream,
)
from adapters.binance._user import UserParser
from adapters.local_exchange import ExchangeConfig, open_exchange
from adapters.local_exchange._server import DEFAULT_API_KEY, DEFAULT_API_SECRET


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.states: list[tuple[str, bool, str]] = []

    async def emit(self, ev: Any, t0: int) -> None:
        self.events.append(ev)

    async def on_state(self, name: str, up: bool, reason: str) -> None:
        self.states.append((name, up, reason))


async def _parser(port: int) -> MarketParser:
    async with httpx.AsyncClient() as http:
        info = (await http.get(f"http://127.0.0.1:{port}/fapi/v1/exchangeInfo")).json()
    sym = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    return MarketParser([instrument_from_symbol_info(0, sym)])


def _contiguous(part: list[Any], whole: list[Any]) -> int:
    """Where ``part`` sits in ``whole`` as one unbroken run (asserts it does)."""
    assert part, "the rotating stream handed on nothing"
    start = whole.index(part[0])
    # the two runs end at the same cancel: either may have read a few frames more
    n = min(len(part), len(whole) - start)
    assert part[:n] == whole[start : start + n]
    assert len(part) - n <= 50 and n > 0.9 * len(part)
    return start


async def _until(stats: dict[str, int], key: str, n: int) -> None:
    """Wait until ``stats[key]`` reaches ``n`` (a loaded machine is slow: the tests wait for
    what happened, not for wall-clock time)."""
    with trio.fail_after(90):
        while stats.get(key, 0) < n:  # noqa: ASYNC110 - a counter, no event to wait on
            await trio.sleep(0.05)


def _market_pair(
    cfg: StreamConfig, key: str, before: Any = None
) -> tuple[Recorder, Recorder, dict[str, int]]:
    """A steady market stream and one with ``cfg`` (started 0.2 s later, after ``before()``)
    on the same local exchange, until the rotating one's ``stats[key]`` reaches 3, then half
    a second more: (steady, rotating, the rotating one's stats)."""

    async def main() -> tuple[Recorder, Recorder, dict[str, int]]:
        async with open_exchange(ExchangeConfig(seed=5, speed=4.0)) as ex:
            url = market_stream_urls(f"ws://127.0.0.1:{ex.port}", ["BTCUSDT"])["public"]
            steady, rotating = Recorder(), Recorder()
            stats: dict[str, int] = {}
            async with trio.open_nursery() as n:
                await n.start(
                    run_market_stream,
                    "public",
                    url,
                    await _parser(ex.port),
                    steady.emit,
                    steady.on_state,
                    StreamConfig(),
                )
                await trio.sleep(0.2)  # the steady stream is surely older
                parser = await _parser(ex.port)
                if before is not None:
                    before()
                n.start_soon(
                    partial(run_market_stream, stats=stats),
                    "public",
                    url,
                    parser,
                    rotating.emit,
                    rotating.on_state,
                    cfg,
                )
                await _until(stats, key, 3)
                await trio.sleep(0.5)
                n.cancel_scope.cancel()
            return steady, rotating, stats

    return trio.run(main)


def test_market_stream_rotates_without_a_gap() -> None:
    fast = StreamConfig(rotate_after_s=0.6, handover_s=0.3, stale_after_s=5.0)
    steady, rotating, stats = _market_pair(fast, "rotations")
    assert stats.get("rotations", 0) >= 3, stats
    assert not stats.get("rotations_failed")
    # one connection as far as the engine can tell: up once, never down
    assert rotating.states == [("public", True, "")]
    assert len(rotating.events) > 500
    _contiguous(rotating.events, steady.events)


def test_a_failed_new_connection_keeps_the_old_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new connection is refused at every rotation: the old one goes on, nothing lost,
    no DOWN, and the rotation is tried again after ``handover_retry_s``."""
    real_connect = _streams.WsConn.connect
    calls = []

    async def connect_once(url: str, **kw: Any) -> Any:
        calls.append(url)
        if len(calls) > 1:
            raise OSError("connection refused (test)")
        return await real_connect(url, **kw)

    cfg = StreamConfig(rotate_after_s=0.5, handover_retry_s=0.5, stale_after_s=5.0)
    steady, rotating, stats = _market_pair(
        cfg,
        "rotations_failed",
        lambda: monkeypatch.setattr(_streams.WsConn, "connect", connect_once),
    )
    assert stats.get("rotations_failed", 0) >= 3, stats
    assert not stats.get("rotations")
    assert rotating.states == [("public", True, "")]
    assert len(rotating.events) > 300
    _contiguous(rotating.events, steady.events)


@pytest.mark.parametrize("busy", [True, False], ids=["orders", "quiet"])
def test_user_stream_rotates_without_a_gap(busy: bool) -> None:
    """Orders placed and cancelled all along (or none: a quiet account still rotates): the
    rotating user stream hands on exactly the steady one's events, never goes DOWN and never
    needs a catch-up after its first."""

    async def main() -> tuple[Recorder, Recorder, dict[str, int], list[str]]:
        async with open_exchange(ExchangeConfig(seed=5)) as ex:
            base = f"http://127.0.0.1:{ex.port}"
            ws = f"ws://127.0.0.1:{ex.port}"
            rest = RestClient(base, Credentials(DEFAULT_API_KEY, DEFAULT_API_SECRET))
            info = await rest.request("GET", "/fapi/v1/exchangeInfo")
            sym = next(s for s in msgspec.json.decode(info)["symbols"] if s["symbol"] == "BTCUSDT")
            steady, rotating = Recorder(), Recorder()
            catch_ups: list[str] = []
            stats: dict[str, int] = {}
            fast = StreamConfig(rotate_after_s=0.6, handover_s=0.3, stale_after_s=5.0)

            async def caught_up(who: str) -> None:
                catch_ups.append(who)

            async def orders() -> None:
                for i in range(10_000):
                    top = msgspec.json.decode(
                        await rest.request(
                            "GET", "/fapi/v1/ticker/bookTicker", [("symbol", "BTCUSDT")]
                        )
                    )
                    price = Decimal(top["bidPrice"]) - Decimal("10")
                    cid = f"rot{i}"
                    await rest.request(
                        "POST",
                        "/fapi/v1/order",
                        [
                            ("symbol", "BTCUSDT"),
                            ("side", "BUY"),
                            ("type", "LIMIT"),
                            ("timeInForce", "GTC"),
                            ("quantity", "0.002"),
                            ("price", str(price)),
                            ("newClientOrderId", cid),
                        ],
                        signed=True,
                        order=True,
                    )
                    await rest.cancel_order("BTCUSDT", cid)
                    await trio.sleep(0.02)

            async with trio.open_nursery() as n:
                await n.start(
                    partial(run_user_stream, routed=True),
                    rest,
                    ws,
                    UserParser([instrument_from_symbol_info(0, sym)]),
                    steady.emit,
                    steady.on_state,
                    partial(caught_up, "steady"),
                    StreamConfig(),
                )
                await n.start(
                    partial(run_user_stream, routed=True, stats=stats),
                    rest,
                    ws,
                    UserParser([instrument_from_symbol_info(0, sym)]),
                    rotating.emit,
                    rotating.on_state,
                    partial(caught_up, "rotating"),
                    fast,
                )
                if busy:
                    n.start_soon(orders)
                await _until(stats, "user_rotations", 3)
                await trio.sleep(0.5)
                n.cancel_scope.cancel()
            await rest.aclose()
            return steady, rotating, stats, catch_ups

    steady, rotating, stats, catch_ups = trio.run(main)
    assert stats.get("user_rotations", 0) >= 3, stats
    assert not stats.get("user_rotations_failed")
    assert rotating.states == [("user", True, "")]
    assert catch_ups.count("rotating") == 1
    if busy:
        assert len(rotating.events) > 100
        _contiguous(rotating.events, steady.events)
    else:
        assert rotating.events == steady.events == []


def test_live_session_rotates_every_stream_without_a_disconnect(tmp_path) -> None:
    """A live session on the local exchange whose streams rotate every second: the journal
    shows each stream up once and never down, the quoter keeps quoting, and the journal
    replays identically."""
    from adapters.local_exchange._server import serve_exchange
    from engine import ConnectionChanged, ConnectionState
    from journal import JournalReader
    from replay import verify
    from tests.test_live_e2e import _orders_sent, _run, runtime

    journal = tmp_path / "live"

    async def main() -> dict[str, int]:
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                ex = await nursery.start(serve_exchange, ExchangeConfig(seed=3))
                rt = runtime(journal, ex.port, rotate_after_s=1.0)
                out: dict[str, Any] = {}
                async with trio.open_nursery() as n:
                    await n.start(_run, rt, out)
                    await _orders_sent(rt, 4)
                    stats = rt.venue.stream_stats
                    await _until(stats, "rotations", 2)
                    await _until(stats, "user_rotations", 1)
                    await trio.sleep(0.5)
                    rt.request_stop("test")
                nursery.cancel_scope.cancel()
                return dict(rt.venue.stream_stats)

    stats = trio.run(main)
    events = [r.event for r in JournalReader(journal).events()]
    changes = [(e.stream, e.state) for e in events if type(e) is ConnectionChanged]
    assert all(state is ConnectionState.UP for _, state in changes), changes
    assert len(changes) == len({s for s, _ in changes})  # each stream up once
    # every stream rotated (public and market: 2 s side by side + 0.5 s grace per rotation)
    assert stats["rotations"] >= 2 and stats["user_rotations"] >= 1, stats
    assert not stats["rotations_failed"] and not stats["user_rotations_failed"]
    assert verify(journal).identical
