"""The event system: events, the algorithm and callback interfaces, and the engine that runs them."""

from composer_swa.events.algorithm import Algorithm
from composer_swa.events.callback import Callback
from composer_swa.events.engine import AlgorithmConflictError, Engine
from composer_swa.events.event import Event

__all__ = ["Algorithm", "AlgorithmConflictError", "Callback", "Engine", "Event"]
