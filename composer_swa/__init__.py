"""composer_swa: weight averaging done right, on an event-driven algorithm engine for PyTorch.

The names below load on first use (``from composer_swa import Trainer`` imports the trainer then),
so that a command such as ``swa-average`` imports only what it uses.

Example:
    >>> from composer_swa import SWA, Trainer
    >>> swa = SWA(swa_start="0.7dur", swa_end="1.0dur", update_interval="5ba")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from composer_swa.algorithms import EMA, LAWA, SWA, SWATS
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
    "State",
    "Time",
    "TimeUnit",
    "Timestamp",
    "Trainer",
    "__version__",
]

# Where each public name lives; imported by __getattr__ the first time it is asked for.
_WHERE = {
    **dict.fromkeys(("EMA", "LAWA", "SWA", "SWATS"), "composer_swa.algorithms"),
    **dict.fromkeys(("Algorithm", "AlgorithmConflictError", "Callback", "Engine", "Event"), "composer_swa.events"),
    "State": "composer_swa.state",
    **dict.fromkeys(("BatchResolver", "Time", "Timestamp", "TimeUnit"), "composer_swa.time"),
    "Trainer": "composer_swa.trainer",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        return _submodule(name)
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def _submodule(name: str) -> Any:
    """``package.submodule`` without importing it first, as when the package imported everything eagerly."""
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
