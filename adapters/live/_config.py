"""The ``live:`` section of a config file: where the exchange is and how the runtime behaves.

No secrets here (the config is copied into every journal): keys come from the environment or
a 0600 key file (``adapters/binance/_sign.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from engine import ConfigError

__all__ = ["Endpoints", "LiveConfig", "load_live_config"]


class Endpoints(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    rest_url: str
    ws_url: str
    ws_api_url: str = ""
    #: Binance's 2026 stream routing (``/public``, ``/market``, ``/private``); off = legacy paths
    routed_streams: bool = True

    def __post_init__(self) -> None:
        for name in ("rest_url", "ws_url", "ws_api_url"):
            url = getattr(self, name)
            if url and not url.startswith(("http://", "https://", "ws://", "wss://")):
                raise ValueError(f"{name} must be an http(s):// or ws(s):// URL, got {url!r}")


MAINNET = Endpoints(
    rest_url="https://fapi.binance.com",
    ws_url="wss://fstream.binance.com",
    ws_api_url="wss://ws-fapi.binance.com/ws-fapi/v1",
)
TESTNET = Endpoints(
    rest_url="https://demo-fapi.binance.com",
    ws_url="wss://fstream.binancefuture.com",
    ws_api_url="wss://testnet.binancefuture.com/ws-fapi/v1",
)

_Positive = Annotated[float, msgspec.Meta(gt=0)]


class LiveConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: mainnet endpoints (``replaymm run``) and testnet ones (``--testnet``)
    mainnet: Endpoints = MAINNET
    testnet: Endpoints = TESTNET
    #: market data for ``--paper`` (default: the mainnet streams); e.g. the local exchange
    paper: Endpoints | None = None
    #: symbols to trade; empty = the strategy's ``symbol``
    symbols: list[str] = []
    #: how orders are sent: REST, or the WebSocket API (REST stays for batches and cancel-all);
    #: ``rest_batch``: REST, and the new orders one step decides for one symbol (a grid's
    #: ladder) go out in ``batchOrders`` requests of up to 5 (a lone order is sent alone: a
    #: batch costs 5 on the 10 s order count and 5 IP weight whatever its size); its cancels
    #: go out in ``DELETE batchOrders`` requests of up to 10 (IP weight 1)
    order_entry: Literal["rest", "rest_batch", "ws_api"] = "rest"
    #: cancel every open order of our symbols on a clean shutdown
    cancel_on_exit: bool = True
    #: dead-man switch: countdownCancelAll with this countdown (s), refreshed while healthy; 0 = off
    dead_man_s: Annotated[float, msgspec.Meta(ge=0)] = 120.0
    dead_man_refresh_s: _Positive = 30.0
    #: journal durability: none | every | interval:<ms>. interval:<ms>: each step is written
    #: to the OS before its requests leave (a kill -9 loses nothing acted upon) and made
    #: durable (power loss) by a sync process at most <ms> later; 0.5 ms: append->durable p99
    #: under 2 ms at 20k events/s on a VPS disk, for ~0.1 core more than interval:2
    durability: str = "interval:0.5"
    recv_window_ms: Annotated[int, msgspec.Meta(ge=100, le=60_000)] = 5000
    timeout_s: _Positive = 10.0
    #: periodic reconciliation (account snapshot) every this many seconds; 0 = only on start
    reconcile_s: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    #: listenKey keepalive period (Binance: a key lives 60 min)
    keepalive_s: _Positive = 1800.0
    #: reconnect a stream after this long (Binance cuts at 24 h)
    rotate_after_s: _Positive = 23 * 3600.0
    #: ping and reconnect when a stream has been silent this long
    stale_after_s: _Positive = 30.0
    #: kline interval subscribed for the strategy (empty = none)
    kline: str = "1m"
    #: key file (api_key=..., api_secret=..., mode 0600); empty = environment variables
    key_file: str = ""

    def __post_init__(self) -> None:
        if self.dead_man_s and self.dead_man_s <= 2 * self.dead_man_refresh_s:
            raise ValueError("dead_man_s must be more than twice dead_man_refresh_s")
        from journal import Durability

        Durability.parse(self.durability)
        if self.order_entry == "ws_api":
            for name, ep in (("mainnet", self.mainnet), ("testnet", self.testnet)):
                if not ep.ws_api_url:
                    raise ValueError(
                        f"order_entry is ws_api but {name}.ws_api_url is empty: set it "
                        "(Binance's is wss://ws-fapi.binance.com/ws-fapi/v1) or use rest"
                    )

    def endpoints(self, mode: str) -> Endpoints:
        if mode == "testnet":
            return self.testnet
        if mode == "paper":
            return self.paper or self.mainnet
        return self.mainnet


def load_live_config(config: dict[str, Any]) -> LiveConfig:
    raw = config.get("live") or {}
    try:
        return msgspec.convert(raw, LiveConfig, strict=False)
    except msgspec.ValidationError as e:
        text = str(e)
        if " - at `$." in text:
            msg, _, where = text.partition(" - at `$.")
            text = f"{where.rstrip('`')}: {msg}"
        raise ConfigError(f"live.{text}") from None
