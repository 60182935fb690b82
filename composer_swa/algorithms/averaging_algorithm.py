"""What SWA, EMA and LAWA share: one average of the model, evaluated on, and swapped in at the end."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from composer_swa.averaging.model_average import ModelAverage, named_state_tensors
from composer_swa.distributed.sharded import full_tensor, local_tensor
from composer_swa.events import Algorithm, Event
from composer_swa.time import Time, TimeUnit, as_time

if TYPE_CHECKING:
    from composer_swa.state import State

__all__ = ["AveragingAlgorithm", "GridAveragingAlgorithm", "SnapshotGrid"]


class AveragingAlgorithm(Algorithm):
    """Base of the averaging algorithms: owns a :class:`ModelAverage` and its life cycle.

    The average is created at FIT_START (after a checkpoint's state was loaded, which is kept
    pending until then), swapped into the model between EVAL_START and EVAL_END when
    ``eval_with_average`` is set, and optionally copied into the model for good.

    Args:
        eval_with_average: Evaluate with the averaged weights during fit.
        offload: Keep the average on the CPU instead of the model's device.
    """

    def __init__(self, eval_with_average: bool, offload: bool) -> None:
        self.eval_with_average = eval_with_average
        self.offload = offload
        self.average: ModelAverage | None = None
        #: The live weights at the moment the average replaced them, by name (EMA and LAWA keep both sets).
        self.training_weights: dict[str, torch.Tensor] | None = None
        self._pending_average: dict[str, Any] | None = None
        self._eval_swap: AbstractContextManager[None] | None = None  # open while evaluating the average

    @property
    def _has_average(self) -> bool:
        """Whether the average holds at least one snapshot of the weights."""
        raise NotImplementedError

    def averaged_weights(self) -> dict[str, torch.Tensor] | None:
        """A copy of the average by tensor name (fp32 for floating tensors), or ``None`` before the first update.

        Under FSDP2 the shards are gathered into whole tensors: every process must call it.

        Example:
            >>> from composer_swa import SWA
            >>> SWA().averaged_weights() is None
            True
        """
        if self.average is None or not self._has_average:
            return None
        return {name: tensor.detach().clone() for name, tensor in self._current_average().full_state_dict().items()}

    def _current_average(self) -> ModelAverage:
        assert self.average is not None
        return self.average

    def _prepare_average(self, state: State) -> ModelAverage:
        if self.average is None:  # a second fit() keeps the average it has
            self.average = ModelAverage(state.model, device="cpu" if self.offload else None)
        if self._pending_average is not None:
            self.average.load_state_dict(self._pending_average)
            self._pending_average = None
        return self.average

    def _matches_eval_swap(self, event: Event, average_ready: bool) -> bool:
        if event is Event.EVAL_START:
            return self.eval_with_average and average_ready
        return event is Event.EVAL_END and self._eval_swap is not None

    def _apply_eval_swap(self, event: Event) -> None:
        if event is Event.EVAL_START:
            assert self.average is not None
            self._eval_swap = self.average.swapped_into_model()
            self._eval_swap.__enter__()
        elif self._eval_swap is not None:
            self._eval_swap.__exit__(None, None, None)
            self._eval_swap = None

    def _replace_model_weights(self, state: State) -> None:
        """Copies the average into the model, keeping the training weights in ``training_weights``."""
        assert self.average is not None
        with torch.no_grad():
            self.training_weights = {name: tensor.detach().clone() for name, tensor in named_state_tensors(state.model)}
        self.average.copy_to_model()

    def _training_weights_state(self) -> dict[str, torch.Tensor] | None:
        """``training_weights`` as whole tensors (gathered under FSDP2, a collective), for a checkpoint."""
        if self.training_weights is None:
            return None
        return {name: full_tensor(local_tensor(tensor), tensor) for name, tensor in self.training_weights.items()}

    def _average_state(self) -> dict[str, torch.Tensor] | None:
        return self.average.full_state_dict() if self.average is not None and self._has_average else None

    def _load_average_state(self, saved: dict[str, torch.Tensor] | None) -> None:
        if saved is not None and self.average is not None:
            self.average.load_state_dict(saved)
        else:
            self._pending_average = saved  # applied once the average exists, at FIT_START


@dataclass
class SnapshotGrid:
    """When EMA and LAWA take a snapshot: every ``interval`` (``ba`` or ``ep``), from ``start`` on.

    Snapshots fall on whole multiples of the interval, counted from the start of the run (as in
    Composer's EMA): with ``"5ba"``, after batches 5, 10, 15...; with ``"2ep"``, at the end of epochs
    2, 4, 6... Those before ``start`` are skipped. ``start`` resolves at FIT_START.

    Example:
        >>> grid = SnapshotGrid(Time.from_timestring("10ba"), Time.from_timestring("4ba"), "update_interval")
        >>> grid.start_batch = 10
        >>> [count for count in range(1, 21) if grid.fires(Event.BATCH_END, count, epoch_count=0)]
        [12, 16, 20]
    """

    start: Time
    interval: Time
    argument: str
    start_batch: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.interval.unit not in (TimeUnit.BATCH, TimeUnit.EPOCH) or self.interval.value < 1:
            raise ValueError(f"{self.argument} must be at least 1 in 'ba' or 'ep', got {str(self.interval)!r}")
        if self.start.unit is TimeUnit.DURATION and not 0 <= float(self.start.value) <= 1:
            raise ValueError(f"the start time in 'dur' must lie in [0, 1], got {str(self.start)!r}")

    @classmethod
    def parse(cls, start: Time | str, interval: Time | str, start_argument: str, interval_argument: str) -> SnapshotGrid:
        return cls(as_time(start, start_argument), as_time(interval, interval_argument), interval_argument)

    @property
    def event(self) -> Event:
        return Event.BATCH_END if self.interval.unit is TimeUnit.BATCH else Event.EPOCH_END

    def resolve(self, state: State) -> None:
        self.start_batch = state.to_batches(self.start)

    def fires(self, event: Event, batch_count: int, epoch_count: int) -> bool:
        if event is not self.event or batch_count < self.start_batch:
            return False
        count = batch_count if event is Event.BATCH_END else epoch_count
        return count % int(self.interval.value) == 0


class GridAveragingAlgorithm(AveragingAlgorithm):
    """EMA and LAWA: snapshots on a :class:`SnapshotGrid`; the average replaces the weights at FIT_END.

    Subclasses act in ``apply``.
    """

    events: ClassVar[frozenset[Event]] = frozenset(
        {Event.FIT_START, Event.BATCH_END, Event.EPOCH_END, Event.EVAL_START, Event.EVAL_END, Event.FIT_END}
    )

    def __init__(self, grid: SnapshotGrid, replace_at_fit_end: bool, eval_with_average: bool, offload: bool) -> None:
        super().__init__(eval_with_average, offload)
        self.grid = grid
        self.replace_at_fit_end = replace_at_fit_end
        self.finished = False  # the average replaced the training weights

    def owned_resources(self, state: State) -> frozenset[str]:
        owned = {"final_weights"} if self.replace_at_fit_end else set()
        if self.eval_with_average:
            owned.add("eval_weights")
        return frozenset(owned)

    def match(self, event: Event, state: State) -> bool:
        if event is Event.BATCH_END or event is Event.EPOCH_END:
            return self.grid.fires(event, state.timestamp.batch_count, state.timestamp.epoch_count)
        if event is Event.EVAL_START or event is Event.EVAL_END:
            return self._matches_eval_swap(event, average_ready=self._has_average and not self.finished)
        if event is Event.FIT_END:
            return self.replace_at_fit_end and self._has_average and not self.finished
        return event is Event.FIT_START
