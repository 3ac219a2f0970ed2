"""The package version: the one place it is written (pyproject.toml reads it from here).

Kept out of ``importlib.metadata`` because importing that costs ~12 ms of every command's
start-up, and a fresh ``replaymm backtest`` is measured end to end.
"""

VERSION = "0.1.0"
