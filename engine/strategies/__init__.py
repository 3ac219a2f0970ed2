"""Strategies that plug into the reducer."""

from ._base import Strategy
from ._simple import SimpleQuoter, SimpleQuoterConfig
from .quoting import (
    PassiveQuoter,
    PassiveQuoterConfig,
    Phase1Quoter,
    Phase1QuoterConfig,
    Phase2Quoter,
    Phase2QuoterConfig,
)

__all__ = [
    "PassiveQuoter",
    "PassiveQuoterConfig",
    "Phase1Quoter",
    "Phase1QuoterConfig",
    "Phase2Quoter",
    "Phase2QuoterConfig",
    "SimpleQuoter",
    "SimpleQuoterConfig",
    "Strategy",
]
