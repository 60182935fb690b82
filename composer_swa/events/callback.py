"""Callbacks: observers with one no-op method per event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from composer_swa.events.event import Event

if TYPE_CHECKING:
    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["Callback"]


class Callback:
    """Override the methods of the events you care about; the rest cost nothing.

    Callbacks observe (log, record, save) while algorithms change training. They run after all
    algorithms at each event. The :class:`~composer_swa.events.Engine` only calls methods a subclass
    overrides.

    Example:
        >>> class PrintLoss(Callback):
        ...     def batch_end(self, state, logger):
        ...         print(state.timestamp.batch, float(state.loss))
    """

    def run_event(self, event: Event, state: State, logger: Logger) -> None:
        getattr(self, event.value)(state, logger)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def init(self, state: State, logger: Logger) -> None:
        pass

    def fit_start(self, state: State, logger: Logger) -> None:
        pass

    def epoch_start(self, state: State, logger: Logger) -> None:
        pass

    def batch_start(self, state: State, logger: Logger) -> None:
        pass

    def after_forward(self, state: State, logger: Logger) -> None:
        pass

    def after_loss(self, state: State, logger: Logger) -> None:
        pass

    def after_backward(self, state: State, logger: Logger) -> None:
        pass

    def after_train_batch(self, state: State, logger: Logger) -> None:
        pass

    def batch_end(self, state: State, logger: Logger) -> None:
        pass

    def epoch_end(self, state: State, logger: Logger) -> None:
        pass

    def eval_start(self, state: State, logger: Logger) -> None:
        pass

    def eval_batch_end(self, state: State, logger: Logger) -> None:
        pass

    def eval_end(self, state: State, logger: Logger) -> None:
        pass

    def fit_end(self, state: State, logger: Logger) -> None:
        pass


def overrides(callback: Callback, event: Event) -> bool:
    """Whether ``callback`` does anything at ``event`` (its class overrides the method)."""
    method = getattr(type(callback), event.value)
    return method is not getattr(Callback, event.value) or type(callback).run_event is not Callback.run_event
