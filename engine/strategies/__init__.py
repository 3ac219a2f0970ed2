"""Strategies that plug into the reducer."""

from ._base import Strategy
from ._simple import SimpleQuoter, SimpleQuoterConfig

__all__ = ["SimpleQuoter", "SimpleQuoterConfig", "Strategy"]
