"""Checks of the algorithms' constructor arguments: a value of the wrong type or range is a ValueError
naming the argument, showing the value and saying what is allowed (never a raw TypeError from a comparison)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from composer_swa.schedule import Schedule
from composer_swa.time import Time, TimeUnit, as_time

if TYPE_CHECKING:
    import torch

    from composer_swa.algorithms.swa import SWA
    from composer_swa.state import State

__all__: list[str] = []


def check_flag(value: object, argument: str) -> bool:
    """``value`` if it is a bool; a truthy string such as ``"no"`` would otherwise switch an option on.

    Example:
        >>> check_flag(True, "offload")
        True
    """
    if not isinstance(value, bool):
        raise ValueError(f"{argument} must be True or False, got {value!r}")
    return value


def is_number(value: object) -> bool:
    """Whether ``value`` is a finite int or float (bools and numeric strings are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_positive(value: object, argument: str, allowed: str = "a finite number > 0") -> float:
    """``value`` as a float if it is a finite number > 0; ``allowed`` completes the error message.

    Example:
        >>> check_positive(2, "warmup_power")
        2.0
    """
    if not is_number(value) or not value > 0:  # type: ignore[operator]
        raise ValueError(f"{argument} must be {allowed}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_swa_window(swa_start: Time | str | int, swa_end: Time | str | int) -> tuple[Time, Time]:
    """SWA's ``swa_start`` and ``swa_end`` as Times: fractions of the run in [0, 1], the start first when comparable.

    Example:
        >>> check_swa_window("0.7dur", "1.0dur")
        (Time(0.7, 'dur'), Time(1.0, 'dur'))
    """
    start, end = as_time(swa_start, "swa_start"), as_time(swa_end, "swa_end")
    for time, argument in ((start, "swa_start"), (end, "swa_end")):
        if time.unit is TimeUnit.DURATION and not 0.0 <= float(time.value) <= 1.0:
            raise ValueError(f"{argument} in 'dur' must lie in [0, 1], got {str(time)!r}")
    if start.unit is end.unit and start >= end:
        raise ValueError(f"swa_start must be before swa_end, got swa_start={str(start)!r}, swa_end={str(end)!r}")
    return start, end


def update_schedule(
    interval: Time | str | int, start: Time | str | int, end: Time | str | int | None = None, argument: str = "update_interval"
) -> Schedule:
    """Snapshots every ``interval`` from ``start`` through ``end``: an interval of at least 1 in ``ba`` or ``ep``.

    Example:
        >>> update_schedule("2ep", start="3ep").interval
        Time(2, 'ep')
    """
    time = as_time(interval, argument)
    if time.unit not in (TimeUnit.BATCH, TimeUnit.EPOCH) or time.value < 1:
        raise ValueError(f"{argument} must be at least 1 in 'ba' or 'ep', got {str(time)!r}")
    return Schedule(time, start, end, argument)


def check_count(value: object, argument: str, note: str = "") -> int:
    """``value`` if it is an int >= 0 (not a bool); ``note`` is added to the error.

    Example:
        >>> check_count(10, "anneal_steps")
        10
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{argument} must be an int >= 0, got {value!r}{note}")
    return value


def check_resolved_window(swa_start: Time, swa_end: Time, state: State, swapped_in: bool) -> tuple[int, int]:
    """SWA's window as batch counts at FIT_START: inside the run, the start first, and, when a resumed run's
    average is not yet swapped in, an end not already passed (else the swap would silently never happen)."""
    start, end = state.to_batches(swa_start), state.to_batches(swa_end)
    if end > state.max_batches:
        raise ValueError(
            f"swa_end={str(swa_end)!r} resolves to batch {end}, past the end of the run "
            f"(max_duration={str(state.max_duration)!r} = {state.max_batches} batches)"
        )
    if start >= end:
        raise ValueError(
            f"swa_start must be before swa_end, got swa_start={str(swa_start)!r} (batch {start}) and "
            f"swa_end={str(swa_end)!r} (batch {end})"
        )
    if not swapped_in and end < state.timestamp.batch_count:
        raise ValueError(
            f"swa_end={str(swa_end)!r} resolves to batch {end}, but the run resumes at batch "
            f"{state.timestamp.batch_count}, past it, with the average not yet swapped in; set swa_end at or after it"
        )
    return start, end


def check_window_updates(swa: SWA, batches_per_epoch: int | None, warn_single: bool) -> None:
    """Refuses an SWA window (resolved at FIT_START) that holds no update; warns when it holds one (``warn_single``)."""
    (start, end), updates = swa._window, swa._updates
    count = updates.count_through(end, batches_per_epoch)
    if count == 0:
        raise ValueError(
            f"the SWA window from swa_start={str(swa.swa_start)!r} to swa_end={str(swa.swa_end)!r} (batches "
            f"{start} to {end}) holds no update every {str(swa.update_interval)!r}; "
            "widen it or shorten update_interval"
        )
    if count == 1 and warn_single:
        first = updates.first_batch(batches_per_epoch)
        warnings.warn(f"SWA: the window holds a single update, so the 'average' is the weights at batch {first}", stacklevel=4)


def check_paper_schedule(schedule: bool | str, swa_start: Time, start_batch: int, batch_count: int, recorded_lrs: bool) -> None:
    """``schedule_swa_lr="paper"`` at FIT_START: a window starting after batch 0 (the decay runs before it), and
    a resumed run whose checkpoint already followed the schedule (it recorded the initial LRs at batch 0)."""
    if schedule != "paper":
        return
    if start_batch == 0:
        raise ValueError(
            f"schedule_swa_lr='paper' decays the LR before swa_start, but swa_start={str(swa_start)!r} resolves to "
            "batch 0; start averaging later (the paper starts at 0.75dur) or use schedule_swa_lr=True"
        )
    if batch_count > 0 and not recorded_lrs:
        raise ValueError(
            f"schedule_swa_lr='paper' schedules the LR from batch 0, but this run resumes at batch {batch_count} from a "
            "checkpoint that did not use it (no initial LRs recorded); resume with the checkpoint's schedule_swa_lr"
        )


def check_one_lr_per_group(lrs: float | list[float] | None, optimizers: list[torch.optim.Optimizer], argument: str) -> None:
    """Refuses a list of LRs whose length is not every optimizer's number of param groups.

    Example:
        >>> check_one_lr_per_group(0.1, [], "swa_lr")  # a single LR fits any optimizer
    """
    if not isinstance(lrs, list):
        return
    for index, optimizer in enumerate(optimizers):
        if len(optimizer.param_groups) != len(lrs):
            raise ValueError(
                f"{argument}={lrs!r} gives one LR per param group, but optimizer {index} ({type(optimizer).__name__}) "
                f"has {len(optimizer.param_groups)} param groups; give one value per group, or a single number for all"
            )


def check_swa_lr(value: object) -> float | list[float] | None:
    """SWA's ``swa_lr``: ``None``, a number > 0, or a non-empty list of them, one per param group (as torch's SWALR).

    Example:
        >>> check_swa_lr(0.1), check_swa_lr((0.1, 0.2)), check_swa_lr(None)
        (0.1, [0.1, 0.2], None)
    """
    allowed = "> 0: a finite number, a list of them (one per param group), or None to hold the LR in effect at swa_start"
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not value or not all(is_number(lr) and lr > 0 for lr in value):
            raise ValueError(f"swa_lr must be {allowed}, got {value!r}")
        return [float(lr) for lr in value]
    return check_positive(value, "swa_lr", allowed)


def check_schedule_swa_lr(value: object, swa_lr: float | list[float] | None) -> bool | str:
    """SWA's ``schedule_swa_lr``: ``True``/``False``, or ``"paper"``, which needs ``swa_lr`` (the LR it decays to).

    Example:
        >>> check_schedule_swa_lr("paper", 0.05), check_schedule_swa_lr(False, None)
        ('paper', False)
    """
    if value == "paper" and isinstance(value, str):
        if swa_lr is None:
            raise ValueError("schedule_swa_lr='paper' decays the LR to swa_lr before swa_start; give swa_lr (e.g. swa_lr=0.05)")
        return value
    if not isinstance(value, bool):
        raise ValueError(f"schedule_swa_lr must be True, False or 'paper', got {value!r}")
    return value


def check_cyclic_lr(value: object) -> tuple[float, float] | None:
    """SWA's ``cyclic_lr``: ``None`` or ``(high, low)`` with ``high >= low > 0``.

    Example:
        >>> check_cyclic_lr([0.1, 0.01])
        (0.1, 0.01)
    """
    if value is None:
        return None
    if (
        not isinstance(value, Sequence)
        or isinstance(value, (str, bytes))
        or len(value) != 2
        or not all(is_number(lr) for lr in value)
        or not value[0] >= value[1] > 0
    ):
        raise ValueError(f"cyclic_lr must be (high, low) with high >= low > 0, or None, got {value!r}")
    return float(value[0]), float(value[1])
