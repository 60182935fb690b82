"""How algorithms compose in one run: what each takes charge of, checked once at FIT_START, and who goes last.

Two rules make any list of algorithms either work as documented or fail at ``FIT_START``:

- **One owner per resource at a time.** An algorithm says what it takes charge of in a run
  (:meth:`Algorithm.owned_resources <composer_swa.Algorithm.owned_resources>`: a :class:`Resource`
  for each, over a :class:`Tenure` of batches). Two algorithms holding one resource over
  overlapping batches are refused, every conflict listed with its fix (:func:`check_composition`).
  The Engine calls it at ``FIT_START``, so every loop that drives an Engine (our Trainer, a plain
  loop, the framework adapters) gets it.
- **Readers before replacers.** At an event where an algorithm may replace the model's weights
  (:attr:`Algorithm.replaces_weights_at <composer_swa.Algorithm.replaces_weights_at>`: SWA's swap at
  ``swa_end``, EMA's and LAWA's at ``FIT_END``), it runs after every algorithm that does not, so
  snapshots (SWA's, EMA's, LAWA's) read the live weights whatever the list order
  (:func:`readers_first`). Otherwise algorithms run in list order.

Example:
    >>> Resource.LR.value, Tenure(start=8, stop=16).overlaps(Tenure(stop=8))
    ('lr', False)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from composer_swa.events.algorithm import Algorithm
    from composer_swa.events.event import Event
    from composer_swa.state import State

__all__ = ["AlgorithmConflictError", "Resource", "Tenure"]


class AlgorithmConflictError(ValueError):
    """Two algorithms of one run take charge of the same thing (the learning rate, the final weights)."""


class Resource(str, Enum):
    """Something of the run that one algorithm at a time may take charge of.

    A ``str`` enum, so ``"lr" == Resource.LR``.
    """

    #: It sets the learning rate, so the user's schedulers do not step meanwhile (``state.lr_owner``).
    LR = "lr"
    #: The model holds its weights when the run ends.
    FINAL_WEIGHTS = "final_weights"
    #: It swaps its weights in for evaluation during fit.
    EVAL_WEIGHTS = "eval_weights"
    #: It averages the weights over a window and replaces them with the average at the window's end (SWA,
    #: SWAG): another such window overlapping it would average weights it replaced, or replace them under it.
    WINDOW_AVERAGE = "window_average"
    #: It replaces ``state.optimizers[i]`` with a new object: only a loop that steps ``state.optimizers``
    #: (our Trainer) follows that, so the framework adapters refuse such an algorithm.
    OPTIMIZER = "optimizer"


@dataclass(frozen=True)
class Tenure:
    """The completed-batch counts ``[start, stop)`` over which an algorithm holds a resource; the whole run by default.

    Args:
        start: The first batch count it holds the resource at.
        stop: The batch count it gives the resource up at (``math.inf``: never).
        start_by: The name of the argument that sets ``start`` (``"swa_start"``), for the conflict's fix.
        stop_by: The name of the argument that sets ``stop`` (``"switch_at"``), for the conflict's fix.

    Example:
        >>> Tenure(start=4, stop=10).overlaps(Tenure(start=9))
        True
    """

    start: int = 0
    stop: float = math.inf
    start_by: str = ""
    stop_by: str = ""

    def overlaps(self, other: Tenure) -> bool:
        return max(self.start, other.start) < min(self.stop, other.stop)


def check_composition(algorithms: Sequence[Algorithm], state: State) -> None:
    """Raises if two algorithms hold one resource over overlapping batches of this run (at FIT_START).

    Every conflict is reported at once, each naming both algorithms and the way to resolve it.

    Raises:
        AlgorithmConflictError: Two holders of one resource overlap.
        TypeError: An algorithm holds a resource its class does not list in ``may_own``.
    """
    holders: dict[Resource, list[tuple[Algorithm, Tenure]]] = {}
    conflicts: list[str] = []
    for algorithm in algorithms:
        owned = algorithm.owned_resources(state)
        if not owned.keys() <= algorithm.may_own:
            extra = sorted(resource.value for resource in owned.keys() - algorithm.may_own)
            raise TypeError(f"{algorithm.name} takes charge of {extra}, which {algorithm.name}.may_own does not list")
        for resource in sorted(owned):
            tenure = owned[resource]
            for other, other_tenure in holders.get(resource, []):
                if tenure.overlaps(other_tenure):
                    conflicts.append(_conflict(resource, (other, other_tenure), (algorithm, tenure)))
            holders.setdefault(resource, []).append((algorithm, tenure))
    if conflicts:
        raise AlgorithmConflictError("\n".join(conflicts))


def readers_first(algorithms: Sequence[Algorithm], event: Event) -> list[Algorithm]:
    """The algorithms listening to ``event`` in the order they run: list order, but those that may replace
    the weights at ``event`` after all the others.

    Example:
        >>> from composer_swa import EMA, SWA, Event
        >>> [a.name for a in readers_first([SWA(), EMA()], Event.BATCH_END)]
        ['EMA', 'SWA']
    """
    listening = [algorithm for algorithm in algorithms if event in algorithm.events]
    return [a for a in listening if event not in a.replaces_weights_at] + [a for a in listening if event in a.replaces_weights_at]


def _conflict(resource: Resource, first: tuple[Algorithm, Tenure], second: tuple[Algorithm, Tenure]) -> str:
    message = f"{first[0].name} and {second[0].name} both take charge of {resource.value!r} in this run"
    (early, early_tenure), (late, late_tenure) = sorted((first, second), key=lambda holder: holder[1].start)
    if early_tenure.start < late_tenure.start and early_tenure.stop_by and late_tenure.start_by:
        message += (
            f": {early.name} until {_argument(early, early_tenure.stop_by)} (batch {early_tenure.stop}), "
            f"{late.name} from {_argument(late, late_tenure.start_by)} (batch {late_tenure.start}); "
            f"set {early_tenure.stop_by} no later than {late_tenure.start_by}, or {_HOW_TO_RESOLVE[resource]}"
        )
        return message
    return f"{message}; {_HOW_TO_RESOLVE[resource]}"


def _argument(algorithm: Algorithm, name: str) -> str:
    value = getattr(algorithm, name, None)
    return f"{name}={str(value)!r}" if value is not None else name


_HOW_TO_RESOLVE = {
    Resource.LR: "let only one of them schedule the learning rate (e.g. SWA(schedule_swa_lr=False))",
    Resource.FINAL_WEIGHTS: (
        "let only one of them replace the final weights "
        "(e.g. an earlier swa_end for SWA, or replace_at_fit_end=False for EMA or LAWA)"
    ),
    Resource.EVAL_WEIGHTS: "let only one of them swap its average in for evaluation (eval_with_average=False on the other)",
    Resource.OPTIMIZER: "let only one of them replace the optimizer",
    Resource.WINDOW_AVERAGE: (
        "let their averaging windows not overlap; SWAG's mean is SWA's average, so a run with SWAG needs no SWA"
    ),
}
