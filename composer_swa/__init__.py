"""composer_swa: weight averaging done right, on an event-driven algorithm engine for PyTorch.

Example:
    >>> from composer_swa import SWA, Trainer
    >>> swa = SWA(swa_start="0.7dur", swa_end="1.0dur", update_interval="5ba")
"""

from composer_swa.algorithms import EMA, LAWA, SWA, SWATS, GradientClipping
from composer_swa.events import Algorithm, AlgorithmConflictError, Callback, Engine, Event
from composer_swa.state import State
from composer_swa.time import BatchResolver, Time, Timestamp, TimeUnit
from composer_swa.trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "EMA",
    "LAWA",
    "SWA",
    "SWATS",
    "Algorithm",
    "AlgorithmConflictError",
    "BatchResolver",
    "Callback",
    "Engine",
    "Event",
    "GradientClipping",
    "State",
    "Time",
    "TimeUnit",
    "Timestamp",
    "Trainer",
    "__version__",
]
