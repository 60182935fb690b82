"""composer_swa: weight averaging done right, on an event-driven algorithm engine for PyTorch.

The names below load on first use (``from composer_swa import Trainer`` imports the trainer then),
so that a command such as ``swa-average`` imports only what it uses.

Example:
    >>> from composer_swa import SWA, Trainer
    >>> swa = SWA(swa_start="0.7dur", swa_end="1.0dur", update_interval="5ba")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from composer_swa._lazy import lazy_attributes

if TYPE_CHECKING:
    from composer_swa.algorithms import EMA, LAWA, SWA, SWAG, SWATS, GradientClipping, PostHocEMA
    from composer_swa.batch_resolver import BatchResolver
    from composer_swa.events import Algorithm, AlgorithmConflictError, Callback, Engine, Event, Resource
    from composer_swa.loggers import Logger
    from composer_swa.models import ComposerModel
    from composer_swa.schedule import Schedule
    from composer_swa.state import State
    from composer_swa.time import Time, TimeUnit
    from composer_swa.timestamp import Timestamp
    from composer_swa.trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "EMA",
    "LAWA",
    "SWA",
    "SWAG",
    "SWATS",
    "Algorithm",
    "AlgorithmConflictError",
    "BatchResolver",
    "Callback",
    "ComposerModel",
    "Engine",
    "Event",
    "GradientClipping",
    "Logger",
    "PostHocEMA",
    "Resource",
    "Schedule",
    "State",
    "Time",
    "TimeUnit",
    "Timestamp",
    "Trainer",
    "__version__",
]

# Where each public name lives; imported the first time it is asked for.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        **dict.fromkeys(("EMA", "LAWA", "SWA", "SWAG", "SWATS", "GradientClipping", "PostHocEMA"), "composer_swa.algorithms"),
        **dict.fromkeys(
            ("Algorithm", "AlgorithmConflictError", "Callback", "Engine", "Event", "Resource"), "composer_swa.events"
        ),
        "ComposerModel": "composer_swa.models",
        "State": "composer_swa.state",
        "Logger": "composer_swa.loggers",
        "BatchResolver": "composer_swa.batch_resolver",
        **dict.fromkeys(("Time", "TimeUnit"), "composer_swa.time"),
        "Timestamp": "composer_swa.timestamp",
        "Schedule": "composer_swa.schedule",
        "Trainer": "composer_swa.trainer",
    },
)
