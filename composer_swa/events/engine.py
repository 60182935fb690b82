"""The engine: runs algorithms and callbacks at each event, knowing nothing of the Trainer."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from composer_swa.events.callback import overrides
from composer_swa.events.composition import check_composition, readers_first
from composer_swa.events.event import Event

if TYPE_CHECKING:
    from composer_swa.events.algorithm import Algorithm
    from composer_swa.events.callback import Callback
    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["Engine"]


class Engine:
    """Fires events: for each event, the interested algorithms, then callbacks, each in list order.

    One exception to list order: at an event where an algorithm may replace the weights, it runs
    after the algorithms that only read them (:func:`~composer_swa.events.composition.readers_first`).
    At FIT_START, once the algorithms resolved their times, it checks that no two take charge of
    one resource (:func:`~composer_swa.events.composition.check_composition`).

    The dispatch tables are built once, from each algorithm's ``events`` and the callback methods
    that are overridden, so an event nobody listens to is one dict lookup. ``trace`` counts which
    algorithm acted at which event; it is cheap enough to stay on.

    Any loop can drive it: build a :class:`~composer_swa.State`, then call ``run_event`` at the
    points marked in :class:`~composer_swa.Event`.

    Example:
        >>> import torch
        >>> from composer_swa import State, Time
        >>> from composer_swa.loggers import Logger
        >>> model = torch.nn.Linear(2, 2)
        >>> state = State(model=model, max_duration=Time(1, "ep"), train_dataloader=[(torch.zeros(1, 2), torch.zeros(1))])
        >>> engine = Engine(state, Logger())
        >>> engine.run_event(Event.INIT)
    """

    def __init__(self, state: State, logger: Logger) -> None:
        self.state = state
        self.logger = logger
        self.trace: Counter[tuple[str, str]] = Counter()
        self._algorithms_at: dict[Event, list[Algorithm]] = {}
        self._callbacks_at: dict[Event, list[Callback]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Rebuilds the dispatch tables; call it after changing ``state.algorithms`` or ``state.callbacks``."""
        self._algorithms_at = {event: readers_first(self.state.algorithms, event) for event in Event}
        self._callbacks_at = {event: [c for c in self.state.callbacks if overrides(c, event)] for event in Event}

    def run_event(self, event: Event) -> None:
        """Runs every algorithm that matches ``event``, then every callback listening to it."""
        state = self.state
        for algorithm in self._algorithms_at[event]:  # empty for most events in most runs
            if algorithm.match(event, state):
                algorithm.apply(event, state, self.logger)
                self.trace[(algorithm.name, event.value)] += 1
        if event is Event.FIT_START:
            check_composition(state.algorithms, state)
        for callback in self._callbacks_at[event]:
            callback.run_event(event, state, self.logger)

    def trace_summary(self) -> str:
        """One line per algorithm: the events it acted on and how often."""
        per_algorithm: dict[str, list[str]] = {}
        for (name, event), count in sorted(self.trace.items()):
            per_algorithm.setdefault(name, []).append(f"{event}×{count}")
        return "\n".join(f"{name}: {', '.join(events)}" for name, events in per_algorithm.items())
