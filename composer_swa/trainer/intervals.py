"""When the Trainer evaluates and logs: ``eval_interval``, ``log_interval`` and ``console_log_interval``.

Each is parsed when the Trainer is built (a bad one fails before any work) and resolved to batch or
epoch counts at every FIT_START, when the run's length is known. ``eval_interval`` is Composer's: an
int counts epochs and ``0`` turns evaluation off, also at the end of fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from composer_swa.schedule import ResolvedSchedule, Schedule, interval_or_off
from composer_swa.time import Time, TimeUnit, as_time
from composer_swa.timestamp import Timestamp

if TYPE_CHECKING:
    from composer_swa.state import State

__all__: list[str] = []


class RunIntervals:
    """The Trainer's evaluation and logging intervals.

    Args:
        eval_interval: How often to evaluate; an int counts epochs; ``0`` never.
        log_interval: How often the training loss and LR go to the loggers.
        console_log_interval: How often they go to the console that ``log_to_console`` adds; an int counts epochs.
        log_to_console: Whether that console is asked for (the same answer on every process: logging the
            loss reduces it across processes).

    Example:
        >>> import torch
        >>> from composer_swa import State
        >>> intervals = RunIntervals(eval_interval=0, log_interval="2ba", console_log_interval="1ba", log_to_console=True)
        >>> state = State(model=torch.nn.Linear(1, 1), max_duration="4ba", train_dataloader=[0, 1])
        >>> intervals.resolve(state, has_eval_data=True)
        >>> intervals.evaluates(Timestamp(batch=2, epoch=1), at_epoch_end=True), intervals.logs(Timestamp(batch=3))
        (False, (False, True))
    """

    def __init__(
        self,
        eval_interval: Time | str | int,
        log_interval: Time | str | int,
        console_log_interval: Time | str | int,
        log_to_console: bool = False,
    ) -> None:
        self.log_to_console = log_to_console
        self.set_eval_interval(eval_interval)
        self._log = Schedule(log_interval, argument="log_interval")
        console = as_time(console_log_interval, "console_log_interval", TimeUnit.EPOCH)
        self._console = Schedule(console, argument="console_log_interval")
        self._eval_at: ResolvedSchedule | None = None
        self._log_at: ResolvedSchedule | None = None
        self._console_at: ResolvedSchedule | None = None

    def set_eval_interval(self, eval_interval: Time | str | int) -> None:
        #: ``None`` when evaluation is off.
        self.eval_interval = interval_or_off(eval_interval, "eval_interval")

    def resolve(self, state: State, has_eval_data: bool) -> None:
        """Resolves every interval against this run's length (at FIT_START)."""
        interval = self.eval_interval if has_eval_data else None
        self._eval_at = None if interval is None else Schedule(interval, argument="eval_interval").resolve(state.resolver)
        self._log_at, self._console_at = (_per_batch(schedule, state) for schedule in (self._log, self._console))

    def evaluates(self, timestamp: Timestamp, at_epoch_end: bool) -> bool:
        """Whether an evaluation falls at this batch's (or epoch's) end."""
        return self._eval_at is not None and self._eval_at.fires(timestamp, at_epoch_end)

    def logs(self, timestamp: Timestamp) -> tuple[bool, bool]:
        """Whether the training loss goes to the loggers, and to the console, at this batch's end."""
        assert self._log_at is not None and self._console_at is not None, "resolve() comes first, at FIT_START"
        to_console = self.log_to_console and self._console_at.fires(timestamp, at_epoch_end=False)
        return self._log_at.fires(timestamp, at_epoch_end=False), to_console


def _per_batch(schedule: Schedule, state: State) -> ResolvedSchedule:
    """The training loss is logged at a batch's end: ``"2ep"`` means every two epochs' batches."""
    if schedule.at_epoch_end:
        schedule = Schedule(Time(state.to_batches(schedule.interval), TimeUnit.BATCH), argument=schedule.argument)
    return schedule.resolve(state.resolver)
