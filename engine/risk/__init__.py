"""The risk service shared by every strategy: ``can_place`` and ``should_panic_stop``.

See ``_service.py`` for how it decides, what each trip does and how to wire it into a
strategy; ``RiskConfig`` is the ``risk:`` section of a strategy config.
"""

from ._config import RiskConfig
from ._service import ALLOW, FLATTEN_TAG, RiskService, Trip, Verdict

__all__ = ["ALLOW", "FLATTEN_TAG", "RiskConfig", "RiskService", "Trip", "Verdict"]
