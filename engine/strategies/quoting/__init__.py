"""The spread quoters: passive (seed 002), phase 1 and phase 2 (seed 003)."""

from ._common import Ladder, QuotingStrategy, lots_for_value
from ._models import (
    ArrivalEstimator,
    VolatilityEstimator,
    as_quotes,
    glft_coefficients,
    glft_quotes,
)
from ._passive import PassiveQuoter, PassiveQuoterConfig
from ._phase1 import Phase1Quoter, Phase1QuoterConfig
from ._phase2 import Phase2Quoter, Phase2QuoterConfig

__all__ = [
    "ArrivalEstimator",
    "Ladder",
    "PassiveQuoter",
    "PassiveQuoterConfig",
    "Phase1Quoter",
    "Phase1QuoterConfig",
    "Phase2Quoter",
    "Phase2QuoterConfig",
    "QuotingStrategy",
    "VolatilityEstimator",
    "as_quotes",
    "glft_coefficients",
    "glft_quotes",
    "lots_for_value",
]
