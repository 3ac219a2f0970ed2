"""The local Binance USDⓈ-M exchange: REST, market streams, user stream and WS API on
127.0.0.1, backed by the project's one matching model (``replay.sim.SimExchange``).

Start it from the command line::

    replaymm exchange                                  # synthetic BTCUSDT, any free port
    replaymm exchange --market runs/btc-20240808 --speed 5 --port 8765
    replaymm exchange --market ../shared/data/binance-usdm-ws-hftbacktest/btcusdt_20240808.gz

or in-process from a test (trio)::

    from adapters.local_exchange import ExchangeConfig, open_exchange, sign

    async with open_exchange(ExchangeConfig(symbols=["BTCUSDT"])) as ex:
        rest = f"http://127.0.0.1:{ex.port}"      # /fapi/v1/..., /fapi/v2/..., /fapi/v3/...
        ws = f"ws://127.0.0.1:{ex.port}"          # /public|/market/stream?streams=...,
                                                  # /private/ws/<listenKey>, /ws-fapi/v1
        ...                                       # key ex.config.api_key, secret
                                                  # ex.config.api_secret (public test values)

or ``server = await nursery.start(serve_exchange, config)`` (``server.port`` is bound).
With ``ExchangeConfig(feed="manual")`` and an injected clock
(``open_exchange(cfg, clock=lambda: t[0])``) the market moves only when the test calls
``ex.pump(n)``: deterministic tests with no sleeps.

Fault injection (see ``_faults.py`` for what each does), in-process or over HTTP as
``POST /control/<action>`` with a JSON body (same names and arguments)::

    ex.control("fail_orders", {"mode": "unknown", "count": 1, "placed": "yes"})
    ex.control("gap_depth", {"count": 1})
    ex.control("drop_ws", {"kind": "market"})        # market | user | ws-api | all
    ex.control("expire_listen_key", {})
    ex.control("skew", {"ms": 2500})
    ex.control("delay", {"kind": "user", "ms": 300})
    ex.control("drop_messages", {"kind": "market", "count": 5})
    ex.control("rate_limit", {"count": 3})           # next 3 requests: 429
    ex.control("ban", {"seconds": 5})                # 418 with Retry-After
    ex.control("clear", {})
    ex.control("status", {})
"""

from ._auth import AuthError, sign, ws_payload
from ._core import ApiError, LocalExchange, Response
from ._faults import ORDER_FAULT_MODES, Faults
from ._market import MarketSource, open_market
from ._server import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    ExchangeConfig,
    ExchangeServer,
    open_exchange,
    serve_exchange,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "ORDER_FAULT_MODES",
    "ApiError",
    "AuthError",
    "ExchangeConfig",
    "ExchangeServer",
    "Faults",
    "LocalExchange",
    "MarketSource",
    "Response",
    "open_exchange",
    "open_market",
    "serve_exchange",
    "sign",
    "ws_payload",
]
