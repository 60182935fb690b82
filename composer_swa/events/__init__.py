"""The event system: events, the algorithm and callback interfaces, the engine that runs them, and how algorithms compose."""

from composer_swa.events.algorithm import Algorithm
from composer_swa.events.callback import Callback
from composer_swa.events.composition import AlgorithmConflictError, Resource, Tenure
from composer_swa.events.engine import Engine
from composer_swa.events.event import Event

__all__ = ["Algorithm", "AlgorithmConflictError", "Callback", "Engine", "Event", "Resource", "Tenure"]
