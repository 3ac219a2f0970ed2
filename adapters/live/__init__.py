"""The live runtime under trio: sources -> one ordered channel -> journal -> step -> executor.

The config part is imported eagerly (config validation uses it and must stay fast); the
runtime and venues, which pull in trio, httpx and trio-websocket, on first use.
"""

from typing import Any

from ._config import Endpoints, LiveConfig, load_live_config

__all__ = [
    "Endpoints",
    "ExchangeVenue",
    "LiveConfig",
    "PaperVenue",
    "Runtime",
    "RuntimeReport",
    "Venue",
    "load_live_config",
]

_LAZY = {
    "Runtime": "_runtime",
    "RuntimeReport": "_runtime",
    "Venue": "_runtime",
    "ExchangeVenue": "_venue",
    "PaperVenue": "_venue",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
