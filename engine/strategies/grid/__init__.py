"""The OpenSQT / QuantMesh grid (seeds 000 and 001; ref/opensqt.md)."""

from ._config import GridConfig, RiskControlConfig
from ._ledger import SLOT_TRANSITIONS, Holding, Lock, OrderRole, Slot, SlotTrigger
from ._monitor import VolumeMonitor
from ._strategy import Grid, instrument_problem

__all__ = [
    "SLOT_TRANSITIONS",
    "Grid",
    "GridConfig",
    "Holding",
    "Lock",
    "OrderRole",
    "RiskControlConfig",
    "Slot",
    "SlotTrigger",
    "VolumeMonitor",
    "instrument_problem",
]
