"""The interface every algorithm implements, and the one shape our own algorithms take: a plan per event."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from composer_swa.events.composition import Resource, Tenure
from composer_swa.events.event import Event

if TYPE_CHECKING:
    import torch

    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["Algorithm", "PlannedAlgorithm"]

#: One step of what an algorithm does at an event.
Action = Callable[["State", "Logger"], None]


class Algorithm(ABC):
    """Something that changes training: it decides when to act (``match``) and acts (``apply``).

    Subclasses list the events they may act on in ``events``; the :class:`~composer_swa.events.Engine`
    never asks an algorithm about any other event, so a batch with nothing to do costs nothing.
    Algorithm state (averages, counters) goes through ``state_dict`` / ``load_state_dict`` so that a
    resumed run continues exactly. :meth:`State.state_dict <composer_swa.State.state_dict>` keys it
    by class name and position (``SWA``, ``SWA_1``), so two instances of one class never collide.

    Composition (see :mod:`composer_swa.events.composition`): ``may_own`` and :meth:`owned_resources`
    say what it takes charge of, checked against the other algorithms at FIT_START;
    ``replaces_weights_at`` makes it run after the algorithms that read the weights at those events.

    Example:
        >>> class CountBatches(Algorithm):
        ...     events = frozenset({Event.BATCH_END})
        ...     def __init__(self):
        ...         self.seen = 0
        ...     def match(self, event, state):
        ...         return True
        ...     def apply(self, event, state, logger):
        ...         self.seen += 1
    """

    events: ClassVar[frozenset[Event]] = frozenset(Event)
    #: Every resource an instance may take charge of; :meth:`owned_resources` says which in a run. A loop
    #: that cannot hand one over refuses the algorithm up front (a framework's loop: ``Resource.OPTIMIZER``).
    may_own: ClassVar[frozenset[Resource]] = frozenset()
    #: The events at which it may replace the model's weights: there it runs after the other algorithms.
    replaces_weights_at: ClassVar[frozenset[Event]] = frozenset()
    #: Constructor arguments stored in checkpoints beside :meth:`state_dict` (each read from the
    #: attribute of that name) and compared with the resumed run's: see :mod:`composer_swa.events.arguments`.
    stored_arguments: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def match(self, event: Event, state: State) -> bool:
        """Whether to run :meth:`apply` at this event."""

    @abstractmethod
    def apply(self, event: Event, state: State, logger: Logger) -> None:
        """Acts on ``state`` at ``event``."""

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain containers only, so checkpoints load with ``weights_only=True``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores what :meth:`state_dict` returned."""

    def locked_arguments(self) -> dict[str, str]:
        """The stored arguments a resumed run may not change, given the state just loaded, each with why.

        A change to any other stored argument is a warning; to one of these, a ValueError.
        """
        return {}

    def summary(self) -> dict[str, Any]:
        """What the algorithm did in this run, as plain values (``swa-train`` writes it to summary.json)."""
        return {}

    def exported_weights(self) -> dict[str, dict[str, torch.Tensor] | None]:
        """Weights the run's export writes beside the model's, by kind (``"average"``, ``"training"``);
        ``None`` for a kind with nothing yet. Under FSDP2 every process must call it (a collective)."""
        return {}

    def on_load(self, state: State) -> None:
        """Called by :meth:`State.load_state_dict` after every algorithm's state is loaded and before
        the optimizers' state is: an algorithm that replaced an object of the State (SWATS replaces
        the optimizer) replaces it again here, so the saved optimizer state fits."""

    def owned_resources(self, state: State) -> Mapping[Resource, Tenure]:
        """What this instance takes charge of in this run (times resolved at FIT_START), and over which batches.

        By default every resource of ``may_own``, for the whole run; options may give some up.
        """
        return dict.fromkeys(self.may_own, Tenure())

    @property
    def name(self) -> str:
        return type(self).__name__


class PlannedAlgorithm(Algorithm):
    """An algorithm whose ``match`` and ``apply`` come from one method, :meth:`plan`, so the two never disagree.

    Example:
        >>> class CountBatches(PlannedAlgorithm):
        ...     events = frozenset({Event.BATCH_END})
        ...     seen = 0
        ...     def plan(self, event, state):
        ...         return (self.count,)
        ...     def count(self, state, logger):
        ...         self.seen += 1
    """

    @abstractmethod
    def plan(self, event: Event, state: State) -> Sequence[Action]:
        """What to do at ``event``, in order; empty for nothing. It only reads: ``match`` and ``apply`` both ask it."""

    def match(self, event: Event, state: State) -> bool:
        return bool(self.plan(event, state))

    def apply(self, event: Event, state: State, logger: Logger) -> None:
        for action in self.plan(event, state):
            action(state, logger)
