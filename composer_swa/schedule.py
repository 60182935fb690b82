"""One meaning for "every N ba|ep from ``start`` through ``end``", whoever asks: SWA, EMA and LAWA snapshots,
checkpoints, evaluation, logging.

The grid counts from ``start``: a batch interval fires at ``start``, ``start + N``, ``start + 2N``...
(completed batch counts, at ``BATCH_END``); an epoch interval fires at the first epoch boundary at
or after ``start`` and every N epochs from there (at ``EPOCH_END``). Nothing fires past ``end``.
Any other unit (``"0.25dur"``, ``"10_000sp"``, ``"1e6tok"``) is resolved to a batch count. A run that
starts at batch 0 therefore fires on whole multiples of the interval: ``"5ba"`` after batches 5, 10,
15...; ``"2ep"`` at the end of epochs 2, 4, 6...

A :class:`Schedule` holds the user's times; :meth:`Schedule.resolve` turns them into plain integers
once, at ``FIT_START``, when the run's length is known, and :meth:`ResolvedSchedule.fires` compares
integers on the hot path.

Example:
    >>> from composer_swa.batch_resolver import BatchResolver
    >>> clock = BatchResolver(max_duration=Time(2, "ep"), batches_per_epoch=10)
    >>> every_4 = Schedule("4ba", start="3ba", argument="update_interval").resolve(clock)
    >>> [count for count in range(1, 21) if every_4.fires(Timestamp(batch=count), at_epoch_end=False)]
    [3, 7, 11, 15, 19]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from composer_swa.batch_resolver import BatchResolver
from composer_swa.time import Time, TimeUnit, as_time
from composer_swa.timestamp import Timestamp

__all__ = ["ResolvedSchedule", "Schedule", "interval_or_off"]


@dataclass(frozen=True)
class Schedule:
    """Something that recurs every ``interval`` from ``start`` through ``end`` (see the module docstring).

    Args:
        interval: How often: ``"5ba"``, ``"1ep"``, ``"0.1dur"``, ``"10_000sp"``; at least 1 of its unit,
            or in ``(0, 1]`` for ``dur``.
        start: The first time it may fire (default: the start of the run).
        end: The last time it may fire (default: the end of the run).
        argument: The user's name for ``interval``, for errors.

    Raises:
        ValueError: ``interval`` is below 1 of its unit (outside ``(0, 1]`` in ``dur``), or ``start`` or
            ``end`` in ``dur`` lies outside ``[0, 1]``.

    Example:
        >>> Schedule("2ep", argument="save_interval").interval
        Time(2, 'ep')
    """

    interval: Time
    start: Time = field(default_factory=lambda: Time(0, TimeUnit.BATCH))
    end: Time | None = None
    argument: str = "interval"

    def __init__(
        self,
        interval: Time | str | int,
        start: Time | str | int = "0ba",
        end: Time | str | int | None = None,
        argument: str = "interval",
    ) -> None:
        interval = as_time(interval, argument)
        if interval.unit is TimeUnit.DURATION and not 0 < float(interval.value) <= 1:
            raise ValueError(f"{argument} in 'dur' must lie in (0, 1], got {str(interval)!r}")
        if interval.unit is not TimeUnit.DURATION and interval.value < 1:
            raise ValueError(f"{argument} must be at least 1 of its unit, got {str(interval)!r}")
        for name, time in (("start", as_time(start, "start")), ("end", None if end is None else as_time(end, "end"))):
            if time is not None and time.unit is TimeUnit.DURATION and not 0 <= float(time.value) <= 1:
                raise ValueError(f"the {name} of {argument} in 'dur' must lie in [0, 1], got {str(time)!r}")
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "start", as_time(start, "start"))
        object.__setattr__(self, "end", None if end is None else as_time(end, "end"))
        object.__setattr__(self, "argument", argument)

    @property
    def at_epoch_end(self) -> bool:
        """Whether it fires at ``EPOCH_END`` (an ``ep`` interval) rather than at ``BATCH_END``."""
        return self.interval.unit is TimeUnit.EPOCH

    def resolve(self, resolver: BatchResolver) -> ResolvedSchedule:
        """The schedule as batch (or epoch) counts for one run.

        An epoch interval needs the epoch's length only when ``start`` or ``end`` is not in epochs.
        """
        end = resolver.max_batches if self.end is None else resolver.to_batches(self.end)
        if not self.at_epoch_end:
            return ResolvedSchedule(resolver.to_batches(self.start), max(1, resolver.to_batches(self.interval)), end, False)
        if self.start.unit is TimeUnit.EPOCH:
            first_epoch = int(self.start.value)
        else:
            start = resolver.to_batches(self.start)
            first_epoch = 0 if start == 0 else math.ceil(start / resolver.to_batches(Time(1, TimeUnit.EPOCH)))
        return ResolvedSchedule(first_epoch, int(self.interval.value), end, True)


@dataclass(frozen=True)
class ResolvedSchedule:
    """A :class:`Schedule` for one run: ``first`` and ``step`` count batches, or epochs when ``at_epoch_end``.

    Args:
        first: The first batch (epoch) count it fires at.
        step: Batches (epochs) between firings; at least 1.
        end: The last batch count it may fire at.
        at_epoch_end: Whether it fires at ``EPOCH_END`` (else at ``BATCH_END``).

    Example:
        >>> every_2nd_epoch = ResolvedSchedule(first=0, step=2, end=100, at_epoch_end=True)
        >>> every_2nd_epoch.fires(Timestamp(batch=40, epoch=4), at_epoch_end=True)
        True
    """

    first: int
    step: int
    end: int
    at_epoch_end: bool

    def fires(self, timestamp: Timestamp, at_epoch_end: bool) -> bool:
        """Whether it fires now: at ``BATCH_END`` (``at_epoch_end=False``) or ``EPOCH_END`` of ``timestamp``."""
        if at_epoch_end is not self.at_epoch_end or timestamp.batch_count > self.end:
            return False
        count = timestamp.epoch_count if at_epoch_end else timestamp.batch_count
        return count >= self.first and (count - self.first) % self.step == 0

    def first_batch(self, batches_per_epoch: int | None) -> int:
        """The first batch count it fires at (an epoch schedule needs the epoch's length unless it starts at 0)."""
        if not self.at_epoch_end or self.first == 0:
            return self.first
        if batches_per_epoch is None:
            raise ValueError("the epoch's length is unknown, so an epoch schedule's first batch is too")
        return self.first * batches_per_epoch

    def count_through(self, batch_count: int, batches_per_epoch: int | None) -> int:
        """How often it fires from ``first`` through ``batch_count`` (and ``end``); counts the firing at 0, if any.

        Example:
            >>> ResolvedSchedule(first=3, step=4, end=20, at_epoch_end=False).count_through(20, None)
            5
        """
        first, last = self.first_batch(batches_per_epoch), min(batch_count, self.end)
        step = self.batch_step(batches_per_epoch)
        return (last - first) // step + 1 if first <= last else 0

    def batch_step(self, batches_per_epoch: int | None) -> int:
        """Batches between firings (an epoch schedule needs the epoch's length).

        Example:
            >>> ResolvedSchedule(first=1, step=2, end=20, at_epoch_end=True).batch_step(5)
            10
        """
        if not self.at_epoch_end:
            return self.step
        if batches_per_epoch is None:
            raise ValueError("the epoch's length is unknown, so an epoch schedule's step in batches is too")
        return self.step * batches_per_epoch


def interval_or_off(value: Time | str | int, argument: str) -> Time | None:
    """The Trainer's ``eval_interval`` and ``save_interval`` as Composer reads them: an int counts epochs,
    and zero of any unit (``0``, ``"0ep"``, ``"0ba"``) turns the periodic event off (``None``).

    Example:
        >>> interval_or_off(2, "eval_interval"), interval_or_off("0ba", "eval_interval")
        (Time(2, 'ep'), None)
    """
    interval = as_time(value, argument, TimeUnit.EPOCH)
    if interval.unit is not TimeUnit.DURATION and interval.value == 0:
        return None
    Schedule(interval, argument=argument)  # its one check of an interval
    return interval
