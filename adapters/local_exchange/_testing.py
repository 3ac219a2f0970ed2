"""Test helpers: a Binance client in a few lines (plain httpx + trio-websocket), a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
import trio
import trio_websocket

from adapters.local_exchange import ExchangeConfig, ExchangeServer, open_exchange, sign
from replay.sim import SimConfig

T0_MS = 1_723_161_256_000  # 2024-08-08 23:54:16 UTC: the synthetic market's own start


class ManualClock:
    def __init__(self, ms: int = T0_MS) -> None:
        self.ns = ms * 1_000_000

    def __call__(self) -> int:
        return self.ns

    def advance_ms(self, ms: float) -> None:
        self.ns += int(ms * 1_000_000)

    @property
    def ms(self) -> int:
        return self.ns // 1_000_000


class Client:
    def __init__(self, ex: ExchangeServer, http: httpx.AsyncClient, clock: ManualClock) -> None:
        self.ex = ex
        self.http = http
        self.clock = clock
        self.key = ex.config.api_key
        self.secret = ex.config.api_secret

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.ex.port}"

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        signed: bool = True,
        key: bool = True,
        timestamp: int | None = None,
    ) -> httpx.Response:
        params = dict(params or {})
        headers = {"X-MBX-APIKEY": self.key} if key else {}
        if signed:
            params["timestamp"] = self.clock.ms if timestamp is None else timestamp
            q = urlencode(params)
            q += "&signature=" + sign(self.secret, q)
        else:
            q = urlencode(params)
        if method in ("POST", "PUT", "DELETE"):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return await self.http.request(method, path, content=q.encode(), headers=headers)
        return await self.http.request(method, path + ("?" + q if q else ""), headers=headers)

    async def ok(
        self, method: str, path: str, params: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        r = await self.call(method, path, params, **kw)
        assert r.status_code == 200, r.text
        return r.json()


@asynccontextmanager
async def exchange(
    *, feed: str = "manual", sim: SimConfig | None = None, **kw: Any
) -> AsyncIterator[Client]:
    clock = ManualClock(kw.pop("t0_ms", T0_MS))
    cfg = ExchangeConfig(feed=feed, sim=sim or SimConfig(), **kw)
    async with open_exchange(cfg, clock=clock) as ex:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ex.port}", timeout=30) as http:
            yield Client(ex, http, clock)


async def recv_json(ws: trio_websocket.WebSocketConnection, wait_s: float = 30) -> Any:
    with trio.fail_after(wait_s):
        return msgspec.json.decode(await ws.get_message())


async def recv_until(
    ws: trio_websocket.WebSocketConnection, pred: Any, wait_s: float = 30
) -> list[Any]:
    """Messages up to and including the first one ``pred`` accepts."""
    out = []
    with trio.fail_after(wait_s):
        while True:
            m = msgspec.json.decode(await ws.get_message())
            out.append(m)
            if pred(m):
                return out
