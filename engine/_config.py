"""The engine's configuration: the ``engine`` and ``strategy`` sections of a config file.

Other sections (``backtest``, ``live``, ...) belong to the programs around the engine and are
validated there. ``load_engine_config`` turns a plain dict (from YAML, or from a journal
header) into typed structs and reports the first problem as one line naming the key.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ._errors import ConfigError
from ._state import EngineState
from .strategies import SimpleQuoter, SimpleQuoterConfig, Strategy
from .strategies.grid import Grid, GridConfig
from .strategies.quoting import (
    PassiveQuoter,
    PassiveQuoterConfig,
    Phase1Quoter,
    Phase1QuoterConfig,
    Phase2Quoter,
    Phase2QuoterConfig,
)

__all__ = ["EngineConfig", "EngineSection", "StrategyConfig", "build_state", "load_engine_config"]

StrategyConfig = (
    SimpleQuoterConfig | GridConfig | PassiveQuoterConfig | Phase1QuoterConfig | Phase2QuoterConfig
)

_STRATEGIES: dict[type[msgspec.Struct], type[Strategy]] = {
    SimpleQuoterConfig: SimpleQuoter,
    GridConfig: Grid,
    PassiveQuoterConfig: PassiveQuoter,
    Phase1QuoterConfig: Phase1Quoter,
    Phase2QuoterConfig: Phase2Quoter,
}

_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,7}$")


class EngineSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: client order ids are <prefix><session>-<seq>-<k>; 1-8 letters/digits, starting with a letter
    client_id_prefix: str = "r"

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.client_id_prefix):
            raise ValueError("client_id_prefix must be 1-8 letters/digits starting with a letter")


class EngineConfig(msgspec.Struct, kw_only=True):
    strategy: StrategyConfig
    engine: EngineSection = msgspec.field(default_factory=EngineSection)


def _one_line(e: msgspec.ValidationError) -> str:
    text = str(e)
    m = re.match(r"^(.*?)(?: - at `\$\.?(.*)`)?$", text, re.S)
    if m and m.group(2):
        return f"{m.group(2)}: {m.group(1)}"
    return text


def load_engine_config(raw: dict[str, Any]) -> EngineConfig:
    """Typed engine config from a plain dict; ConfigError (one line) on the first bad value."""
    if not isinstance(raw, dict):
        raise ConfigError("config must be a mapping with a 'strategy' section")
    if "strategy" not in raw:
        raise ConfigError("config has no 'strategy' section (what should the engine run?)")
    picked = {k: raw[k] for k in ("strategy", "engine") if k in raw}
    try:
        return msgspec.convert(picked, EngineConfig, strict=False)
    except msgspec.ValidationError as e:
        raise ConfigError(_one_line(e)) from None


def build_state(config: EngineConfig) -> EngineState:
    strategy_cls = _STRATEGIES[type(config.strategy)]
    strategy = strategy_cls(config.strategy)  # type: ignore[call-arg]
    return EngineState(strategy, client_id_prefix=config.engine.client_id_prefix)
