"""Constructor arguments stored with each algorithm's state, and checked when a run resumes from it.

:meth:`State.algorithms_state_dict <composer_swa.State.algorithms_state_dict>` adds, under the key
``"arguments"`` of every algorithm's entry, the values of its
:attr:`~composer_swa.Algorithm.stored_arguments` as plain values (a ``Time`` as its string, tuples as
lists), so checkpoints still load with ``weights_only=True``. On load, an argument whose value
differs from the checkpoint's gets a warning naming it (old → new), or a ValueError when the
algorithm lists it in :meth:`~composer_swa.Algorithm.locked_arguments` for the state just loaded
(a change that would make the saved average wrong). Checkpoints written before arguments were
stored hold none: nothing can be checked, and a warning says so.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from composer_swa.time import Time

if TYPE_CHECKING:
    from composer_swa.events.algorithm import Algorithm

__all__: list[str] = []

#: The key of an algorithm's entry under which its arguments are stored.
ARGUMENTS_KEY = "arguments"


def plain_argument(value: Any) -> Any:
    """``value`` as what ``weights_only=True`` loads and ``==`` compares: a ``Time`` → ``'10ba'``, tuples → lists.

    Example:
        >>> plain_argument((Time(3, "ep"), 0.5, None))
        ['3ep', 0.5, None]
    """
    if isinstance(value, Time):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain_argument(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain_argument(item) for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def state_with_arguments(algorithm: Algorithm) -> dict[str, Any]:
    """``algorithm.state_dict()`` plus its stored arguments (none for an algorithm that lists none)."""
    state = algorithm.state_dict()
    if algorithm.stored_arguments:
        state = {**state, ARGUMENTS_KEY: {name: plain_argument(getattr(algorithm, name)) for name in algorithm.stored_arguments}}
    return state


def load_with_arguments(algorithm: Algorithm, key: str, saved: dict[str, Any]) -> None:
    """Loads ``saved`` into ``algorithm``, then compares the arguments stored in it with the algorithm's own.

    Raises:
        ValueError: An argument the algorithm locks in the state just loaded differs from the checkpoint's.
    """
    if not algorithm.stored_arguments:
        algorithm.load_state_dict(saved)
        return
    saved = dict(saved)
    stored = saved.pop(ARGUMENTS_KEY, None)
    algorithm.load_state_dict(saved)
    if stored is None:
        warnings.warn(
            f"{key}: the checkpoint stores no arguments (written before composer_swa stored them), so this run's "
            f"{', '.join(algorithm.stored_arguments)} cannot be checked against the saved run's",
            stacklevel=3,
        )
        return
    changes = {
        name: (stored[name], plain_argument(getattr(algorithm, name)))
        for name in algorithm.stored_arguments
        if name in stored and stored[name] != plain_argument(getattr(algorithm, name))
    }
    if not changes:
        return
    described = ", ".join(f"{name} {old!r} → {new!r}" for name, (old, new) in changes.items())
    locked = {name: why for name, why in algorithm.locked_arguments().items() if name in changes}
    if locked:
        name, why = next(iter(locked.items()))
        fix = ", ".join(f"{locked_name}={changes[locked_name][0]!r}" for locked_name in locked)
        raise ValueError(
            f"{key}: this run changes arguments of the checkpoint's ({described}), but {name} cannot change now: {why}; "
            f"resume with {fix}, or start a new run without this checkpoint"
        )
    warnings.warn(
        f"{key}: this run changes arguments of the checkpoint's ({described}); the new values apply from here on",
        stacklevel=3,
    )
