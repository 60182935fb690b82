"""Learning-rate formulas that algorithms apply themselves (SWA's annealing and cyclic schedules)."""

from __future__ import annotations

import math

import torch

__all__ = [
    "ANNEAL_STRATEGIES",
    "anneal_progress",
    "annealed_lr",
    "annealed_lrs",
    "cyclic_lr",
    "normalize_anneal_strategy",
    "paper_progress",
    "set_lrs",
]

#: Accepted spellings (Composer's and PyTorch's) of each annealing strategy.
ANNEAL_STRATEGIES = {"linear": "linear", "lin": "linear", "cosine": "cosine", "cos": "cosine"}


def normalize_anneal_strategy(strategy: str) -> str:
    try:
        return ANNEAL_STRATEGIES[strategy.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"anneal_strategy must be one of {sorted(ANNEAL_STRATEGIES)}, got {strategy!r}") from None


def annealed_lr(start: float, end: float, progress: float, strategy: str) -> float:
    """The LR a fraction ``progress`` (0 to 1) of the way from ``start`` to ``end``.

    Example:
        >>> annealed_lr(1.0, 0.0, 0.25, "linear"), round(annealed_lr(1.0, 0.0, 0.5, "cosine"), 6)
        (0.75, 0.5)
    """
    progress = min(max(progress, 0.0), 1.0)
    if strategy == "cosine":
        return end + (start - end) * (1 + math.cos(math.pi * progress)) / 2
    return start + (end - start) * progress


def annealed_lrs(
    start_lrs: list[list[float]], target: float | list[float] | None, progress: float, strategy: str
) -> list[list[float]]:
    """:func:`annealed_lr` for every param group of every optimizer, from ``start_lrs[i][j]`` toward ``target``.

    ``target`` is one LR for all groups, a list with one per group (the same for every optimizer), or
    ``None`` to hold each group's start LR.

    Example:
        >>> annealed_lrs([[1.0, 0.5]], [0.2, 0.1], 0.5, "linear")
        [[0.6, 0.3]]
    """

    def end(start: float, group: int) -> float:
        if target is None:
            return start
        return target[group] if isinstance(target, list) else target

    return [[annealed_lr(lr, end(lr, group), progress, strategy) for group, lr in enumerate(lrs)] for lrs in start_lrs]


def cyclic_lr(high: float, low: float, step_in_cycle: int, cycle_length: int) -> float:
    """Izmailov et al. 2018, eq. 2: ``(1 - t) * high + t * low`` with ``t = step / cycle_length``.

    ``step_in_cycle`` runs from 1 to ``cycle_length``; the last step of a cycle uses ``low``, and the
    average is taken right after it.

    Example:
        >>> [round(cyclic_lr(0.1, 0.01, step, 3), 6) for step in (1, 2, 3)]
        [0.07, 0.04, 0.01]
    """
    t = step_in_cycle / cycle_length
    return (1 - t) * high + t * low


#: Izmailov et al. 2018's schedule, as fractions ``t`` of the way to swa_start: the initial LR up to
#: ``t = 0.5``, a linear decay to swa_lr until ``t = 0.9``, then swa_lr (their code's ``learning_rate_schedule``).
PAPER_DECAY_FROM, PAPER_DECAY_TO = 0.5, 0.9


def paper_progress(batch_count: int, swa_start_batch: int) -> float:
    """How far (0 to 1) from the initial LR to swa_lr the paper's schedule is, for the batch after ``batch_count``.

    With ``t = batch_count / swa_start_batch``: 0 while ``t <= 0.5``, ``(t - 0.5) / 0.4`` up to ``t = 0.9``,
    then 1 (held through the SWA window). The LR is ``annealed_lr(initial, swa_lr, progress, "linear")``.

    Example:
        >>> [round(paper_progress(count, 100), 6) for count in (0, 50, 70, 90, 100, 150)]
        [0.0, 0.0, 0.5, 1.0, 1.0, 1.0]
    """
    t = batch_count / swa_start_batch
    return min(max((t - PAPER_DECAY_FROM) / (PAPER_DECAY_TO - PAPER_DECAY_FROM), 0.0), 1.0)


def anneal_progress(schedule: bool | str, count: int, first: int, swa_start_batch: int, anneal_steps: int) -> float:
    """SWA's progress from the LRs it found to ``swa_lr``, for the batch after ``count``.

    ``schedule="paper"``: :func:`paper_progress`. ``True``: the anneal over ``anneal_steps`` steps
    from the first update ``first`` (0 steps jumps to ``swa_lr``).

    Example:
        >>> anneal_progress(True, count=11, first=10, swa_start_batch=10, anneal_steps=4)
        0.5
    """
    if schedule == "paper":
        return paper_progress(count, swa_start_batch)
    return 1.0 if anneal_steps == 0 else (count - first + 1) / anneal_steps


def set_lrs(optimizers: list[torch.optim.Optimizer], lrs: list[list[float]]) -> None:
    """Sets each param group's LR: ``lrs[i][j]`` for group ``j`` of optimizer ``i``."""
    for optimizer, group_lrs in zip(optimizers, lrs):
        for group, lr in zip(optimizer.param_groups, group_lrs):
            group["lr"] = lr
