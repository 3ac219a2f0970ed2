"""Config files: YAML -> a validated plain dict (the dict goes into the journal header).

Numbers that look like decimals (``order_qty: 0.002``) are kept as the text the trader wrote,
never as binary floats, so ``0.1`` stays exactly 0.1. Secrets are refused: API keys belong
in the environment or a 0600 key file, never in a config that is copied into every journal.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from engine import ConfigError, load_engine_config

__all__ = ["SECTIONS", "load_config", "parse_config", "set_config_value"]

#: top-level sections a config file may have, and who reads them
SECTIONS = ("engine", "strategy", "backtest", "live", "exchange")

_SECRET_KEY = re.compile(r"(secret|api[_-]?key|password|passphrase|private[_-]?key)", re.I)


class _DecimalLoader(yaml.SafeLoader):
    """SafeLoader that keeps floats as their source text (exact decimals)."""


def _float_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _float_as_text)


def _check_secrets(obj: Any, path: str = "") -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            where = f"{path}.{k}" if path else str(k)
            if _SECRET_KEY.search(str(k)) and v not in (None, ""):
                raise ConfigError(
                    f"{where}: secrets do not belong in a config file (it is copied into every "
                    "journal); set REPLAYMM_API_KEY / REPLAYMM_API_SECRET or use a 0600 key file"
                )
            _check_secrets(v, where)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_secrets(v, f"{path}[{i}]")


def parse_config(raw: Any, origin: str = "config") -> dict[str, Any]:
    """Validate a config mapping; returns it (plain data) or raises ConfigError (one line)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping of sections ({', '.join(SECTIONS)})")
    if "risk" in raw:
        # risk limits belong to the strategy they guard; a top-level section would be ignored
        raise ConfigError(f"{origin}: move the 'risk' section under 'strategy' (strategy.risk)")
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        raise ConfigError(
            f"{origin}: unknown section {unknown[0]!r}; sections are {', '.join(SECTIONS)}"
        )
    _check_secrets(raw)
    try:
        _check_against_exchange_rules(load_engine_config(raw))
        from replay import load_sim_config

        load_sim_config(raw)
        from adapters.live import load_live_config

        load_live_config(raw)
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from None
    return raw


def _check_against_exchange_rules(config: Any) -> None:
    """Rules that need the symbol's tick/step/min notional, checked now (with the built-in
    exchange rules) rather than when the run loads the instrument."""
    from engine.strategies.grid import GridConfig, instrument_problem

    strategy = config.strategy
    if not isinstance(strategy, GridConfig):
        return
    from adapters.binance import builtin_instrument
    from engine._instrument import Instrument

    try:
        spec = builtin_instrument(0, strategy.symbol)
    except (KeyError, ValueError):
        return  # not in the built-in table: checked when the instrument loads
    problem = instrument_problem(strategy, Instrument(spec))
    if problem:
        raise ConfigError(f"strategy: {problem[1]}")


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    try:
        raw = yaml.load(text, Loader=_DecimalLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_config(raw, str(path))


def set_config_value(config: dict[str, Any], dotted: str, value: str) -> dict[str, Any]:
    """A copy of ``config`` with ``a.b.c`` set to ``value`` (parsed as YAML, decimals as text)."""
    import copy

    out = copy.deepcopy(config)
    keys = dotted.split(".")
    node = out
    for k in keys[:-1]:
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {k} is not a section")
        node = child
    node[keys[-1]] = yaml.load(value, Loader=_DecimalLoader)
    return out
