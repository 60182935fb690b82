"""Composer's scheduler protocol: a function of the run's time that returns an LR multiplier.

A :class:`ComposerScheduler` is any callable ``(state, ssr=1.0) -> float``. The State compiles each
one into a :class:`~torch.optim.lr_scheduler.LambdaLR` over the run's optimizer
(:func:`compile_composer_scheduler`), so it steps, pauses while an algorithm owns the LR
(``state.lr_owner``) and checkpoints like any PyTorch scheduler. It is stepped after every batch by
default, PyTorch schedulers after every epoch (the Trainer's ``step_schedulers_every_batch``).

Times resolve as in Composer: ``ep`` becomes batches through the epoch length; ``dur`` becomes a
count in ``max_duration``'s unit (batches when that is ``ep``), rounded down, computed exactly.

One difference from Composer, on purpose: the multiplier is computed once the finished batch is
counted, so batch ``k`` trains at ``alpha(k)``, the formula at the time it runs. Composer steps its
schedulers before counting the batch, so there batch ``k >= 1`` trains at ``alpha(k - 1)``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any, Protocol

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from composer_swa.time import Time, TimeUnit, as_time
from composer_swa.timestamp import Timestamp

__all__ = ["ComposerScheduler", "compile_composer_scheduler"]


class SchedulerState(Protocol):
    """What a scheduler reads from :class:`~composer_swa.State`."""

    timestamp: Timestamp
    max_duration: Time
    optimizers: list[torch.optim.Optimizer]

    @property
    def batches_per_epoch(self) -> int | None: ...


class ComposerScheduler(Protocol):
    """A stateless LR schedule: ``alpha = scheduler(state, ssr=1.0)``, a multiplier of the optimizer's LR.

    A plain function ``def schedule(state): ...`` is one too. ``ssr`` (the scale schedule ratio)
    stretches the schedule in time: ``alpha_ssr(t) = alpha(t / ssr)``.

    Example:
        >>> def halve_after_ten_epochs(state) -> float:
        ...     return 1.0 if state.timestamp < Time(10, "ep") else 0.5
    """

    def __call__(self, state: Any, ssr: float = 1.0) -> float: ...


class CompiledComposerScheduler(LambdaLR):
    """The LambdaLR a :class:`ComposerScheduler` compiles into; its type tells the Trainer to step it per batch."""

    def refresh(self) -> None:
        """Sets each group's LR to the schedule's value at the state's time now, without stepping."""
        self._last_lr = [base * rule(self.last_epoch) for rule, base in zip(self.lr_lambdas, self.base_lrs, strict=True)]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr


def refresh_composer_schedulers(state: Any) -> None:
    """At FIT_START: the Composer schedulers' LRs at the run's time, once its length and data are known.

    A schedule built before them (``fit(duration=...)``, ``fit(train_dataloader=...)``) held the base LR
    until now; a run resumed or extended reads its schedule at the time it stands. While an algorithm
    owns the LR (``state.lr_owner``), the schedules wait, as they do between batches.
    """
    if state.lr_owner is not None:
        return
    for scheduler in state.schedulers:
        if isinstance(scheduler, CompiledComposerScheduler):
            scheduler.refresh()


def convert_time(time: Time | str, state: SchedulerState, ssr: float = 1.0) -> Time:
    """``time`` in a unit the timestamp counts: ``ep`` as batches, ``dur`` in ``max_duration``'s unit.

    Example:
        >>> from types import SimpleNamespace
        >>> state = SimpleNamespace(max_duration=Time(10, "ep"), batches_per_epoch=100)
        >>> convert_time("0.25dur", state), convert_time("2ep", state), convert_time("30ba", state, ssr=0.5)
        (Time(250, 'ba'), Time(200, 'ba'), Time(15, 'ba'))
    """
    time = as_time(time)
    max_duration = state.max_duration
    if time.unit is TimeUnit.DURATION:  # max_duration is already the scaled length: no ssr here
        fraction = Fraction(str(time.value))
        if max_duration.unit is TimeUnit.EPOCH:
            return Time(math.floor(fraction * _epoch_length(state, time) * max_duration.value), TimeUnit.BATCH)
        return Time(math.floor(fraction * max_duration.value), max_duration.unit)
    if time.unit is TimeUnit.EPOCH:  # epochs are too coarse to scale: count batches
        time = Time(time.value * _epoch_length(state, time), TimeUnit.BATCH)
    return time * ssr


def _epoch_length(state: SchedulerState, time: Time) -> int:
    if not state.batches_per_epoch:
        raise ValueError(f"cannot convert {time} for a scheduler: the train dataloader has no length; use 'ba' instead")
    return state.batches_per_epoch


def check_warmup_units(t_warmup: Time, t_max: Time) -> None:
    """Both converted times in one unit (Composer's rule: a warm-up in ``sp`` cannot precede a ``t_max`` in ``ba``)."""
    if t_warmup.unit is not t_max.unit:
        raise ValueError(
            f"Cannot use warmup scheduler with t_max {t_max} and t_warmup {t_warmup}: "
            f"t_warmup and t_max must use the same units (after 'ep' becomes 'ba' and 'dur' max_duration's unit)"
        )


def check_t_max_covers_run(t_max: Time, state: SchedulerState) -> None:
    """A converted ``t_max`` must reach ``max_duration`` where the two can be compared, else the schedule ends early."""
    max_duration, per_epoch = state.max_duration, state.batches_per_epoch
    if t_max.unit is max_duration.unit:
        limit = max_duration.value
    elif t_max.unit is TimeUnit.BATCH and max_duration.unit is TimeUnit.EPOCH and per_epoch:
        limit = max_duration.value * per_epoch
    else:
        return  # not comparable without the data's sample and token counts
    if t_max.value < limit:
        raise ValueError(
            f"t_max {t_max} must be greater than or equal to max_duration {max_duration}; "
            f"otherwise the LR schedule is not defined for the whole run"
        )


def compile_composer_scheduler(scheduler: ComposerScheduler, state: SchedulerState, ssr: float = 1.0) -> LambdaLR:
    """``scheduler`` as a LambdaLR over the run's one optimizer, reading ``state`` whenever it steps.

    Raises:
        ValueError: The run has no optimizer or several, or ``ssr != 1`` for a scheduler that takes
            only ``state``.
    """
    if len(state.optimizers) != 1:
        raise ValueError(
            f"a ComposerScheduler ({_name(scheduler)}) drives exactly one optimizer; this run has "
            f"{len(state.optimizers)}: pass one optimizer, or PyTorch schedulers built on each"
        )
    takes_state_only = len(inspect.signature(scheduler).parameters) == 1
    if takes_state_only and ssr != 1.0:
        raise ValueError(
            f"scheduler {_name(scheduler)} takes only (state), so it cannot scale by ssr={ssr!r}; add an ssr argument"
        )

    def multiplier(step: int) -> float:
        del step  # the schedule reads the state's time, not the LambdaLR's count
        if not getattr(state, "ready_to_train", True):
            return 1.0  # built before fit() knows the run's length or data: refreshed at FIT_START
        return float(scheduler(state) if takes_state_only else scheduler(state, ssr))

    return CompiledComposerScheduler(state.optimizers[0], multiplier)


def compile_schedulers(schedulers: Iterable[Any], state: SchedulerState) -> list[Any]:
    """PyTorch schedulers as given; every ComposerScheduler compiled (see :func:`compile_composer_scheduler`)."""
    compiled: list[Any] = []
    for index, scheduler in enumerate(schedulers):
        if isinstance(scheduler, LRScheduler) or hasattr(scheduler, "step"):
            compiled.append(scheduler)
        elif callable(scheduler):
            compiled.append(compile_composer_scheduler(scheduler, state))
        else:
            raise TypeError(
                f"schedulers[{index}] must be a torch.optim.lr_scheduler object or a ComposerScheduler "
                f"(a callable (state, ssr=1.0) -> float), got {scheduler!r}"
            )
    return compiled


def is_composer_scheduler(scheduler: object) -> bool:
    """Whether ``scheduler`` was compiled from a ComposerScheduler (stepped per batch by default)."""
    return isinstance(scheduler, CompiledComposerScheduler)


def _name(scheduler: object) -> str:
    return getattr(scheduler, "__qualname__", type(scheduler).__name__)


def example_state(batch: int, max_duration: str = "100ba", batches_per_epoch: int = 10) -> Any:
    """A stand-in for a State ``batch`` batches into a run, to try a schedule outside training.

    Example:
        >>> from composer_swa.optim import CosineAnnealingScheduler
        >>> [round(CosineAnnealingScheduler()(example_state(b)), 3) for b in (0, 50, 100)]
        [1.0, 0.5, 0.0]
    """
    from types import SimpleNamespace

    epoch, _ = divmod(batch, batches_per_epoch)
    timestamp = Timestamp(epoch=epoch, batch=batch, batch_in_epoch=batch - epoch * batches_per_epoch)
    return SimpleNamespace(timestamp=timestamp, max_duration=as_time(max_duration), batches_per_epoch=batches_per_epoch)


def times_argument(values: Sequence[Time | str | int], argument: str) -> list[Time]:
    """A list of time arguments (``milestones``), each parsed when the scheduler is built."""
    if isinstance(values, (str, Time)):
        raise TypeError(f"{argument} must be a list of times like ['0.3dur', '0.6dur'], got {values!r}")
    return [as_time(value, f"{argument}[{index}]") for index, value in enumerate(values)]
