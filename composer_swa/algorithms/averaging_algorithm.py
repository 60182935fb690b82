"""What SWA, EMA and LAWA share: one average of the model, evaluated on, and swapped in for good."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from composer_swa.averaging.model_average import ModelAverage, named_state_tensors
from composer_swa.distributed.sharded import full_tensor, local_tensor
from composer_swa.events import Event, Resource, Tenure
from composer_swa.events.algorithm import Action, PlannedAlgorithm
from composer_swa.schedule import ResolvedSchedule, Schedule

if TYPE_CHECKING:
    from composer_swa.loggers import Logger
    from composer_swa.state import State
    from composer_swa.time import Time

__all__ = ["AveragingAlgorithm", "GridAveragingAlgorithm"]

#: A snapshot schedule before FIT_START resolves the real one: it never fires.
UNRESOLVED = ResolvedSchedule(first=0, step=1, end=-1, at_epoch_end=False)


class AveragingAlgorithm(PlannedAlgorithm):
    """Base of the averaging algorithms: owns a :class:`ModelAverage`, its snapshot schedule and its life cycle.

    The schedule is resolved and the average created at FIT_START (after a checkpoint's state was
    loaded, which is kept pending until then). The average is swapped into the model between
    EVAL_START and EVAL_END when ``eval_with_average`` is set, and copied into the model for good
    once (``finished``).

    Each time the schedule fires, :meth:`should_update` decides whether the update happens: override it
    in a subclass for a policy of your own over the same window (Lightning's ``WeightAveraging`` hook).

    Args:
        schedule: When to take a snapshot of the weights into the average.
        eval_with_average: Evaluate with the averaged weights during fit.
        offload: Keep the average on the CPU instead of the model's device.
        use_buffers: Average floating buffers too; ``False``: the average holds the live buffers as of its
            last update (torch's and Lightning's ``use_buffers``, timm's ``exclude_buffers`` inverted).
    """

    def __init__(self, schedule: Schedule, eval_with_average: bool, offload: bool, use_buffers: bool = True) -> None:
        self.schedule = schedule
        self.use_buffers = use_buffers
        self._updates = UNRESOLVED  # the schedule's batch (epoch) counts in this run, resolved at FIT_START
        self._batches_per_epoch: int | None = None
        self.eval_with_average = eval_with_average
        self.offload = offload
        self.average: ModelAverage | None = None
        #: The live weights at the moment the average replaced them, by name.
        self.training_weights: dict[str, torch.Tensor] | None = None
        #: Whether the average replaced the training weights (checkpointed: a resumed run does not do it twice).
        self.finished = False
        self._pending_average: dict[str, Any] | None = None
        self._eval_swap: ExitStack | None = None  # open from EVAL_START to EVAL_END: it puts the live weights back

    @property
    def update_interval(self) -> Time:
        return self.schedule.interval

    @property
    def _first_update(self) -> int:
        """The batch count of the first snapshot in this run."""
        return self._updates.first_batch(self._batches_per_epoch)

    @property
    def _update_step(self) -> int:
        """Batches between snapshots in this run."""
        return self._updates.batch_step(self._batches_per_epoch)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """Whether the update the schedule asks for now happens (always, unless a subclass says otherwise).

        Called once each time the update schedule fires, with the zero-based index of the batch
        (optimizer step) just done when the interval is in ``ba``, or of the epoch just done when it is
        in ``ep``, as Lightning's ``WeightAveraging.should_update``; ``-1`` for a snapshot of the
        initial weights (an SWA window from batch 0). It cannot add updates off the schedule: give a
        shorter ``update_interval`` for that. The LR that SWA sets follows the schedule, not this hook.

        Example:
            >>> from composer_swa import EMA
            >>> class EveryOtherBatch(EMA):
            ...     def should_update(self, step_idx=None, epoch_idx=None):
            ...         return step_idx is not None and step_idx % 2 == 1
            >>> EveryOtherBatch(half_life="10ba").should_update(step_idx=3)
            True
        """
        return True

    def _accepts_update(self, state: State) -> bool:
        """Asks :meth:`should_update` about the update due now (a batch or an epoch one, as the schedule is)."""
        if self._updates.at_epoch_end:
            answer = self.should_update(epoch_idx=state.timestamp.epoch_count - 1)
        else:
            answer = self.should_update(step_idx=state.timestamp.batch_count - 1)
        if not isinstance(answer, bool):
            raise TypeError(f"{type(self).__name__}.should_update must return True or False, got {answer!r}")
        return answer

    def _resolve_schedule(self, state: State) -> None:
        self._updates = self.schedule.resolve(state.resolver)
        self._batches_per_epoch = state.batches_per_epoch

    @property
    @abstractmethod
    def _has_average(self) -> bool:
        """Whether the average holds at least one snapshot of the weights."""

    def exported_weights(self) -> dict[str, dict[str, torch.Tensor] | None]:
        return {"average": self.averaged_weights(), "training": self.training_weights}

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
        """The average to evaluate on or swap in (LAWA computes its window's mean here)."""
        assert self.average is not None
        return self.average

    def _prepare_average(self, state: State) -> ModelAverage:
        if self.average is None:  # a second fit() keeps the average it has
            self.average = ModelAverage(state.model, device="cpu" if self.offload else None, use_buffers=self.use_buffers)
        if self._pending_average is not None:
            self.average.load_state_dict(self._pending_average)
            self._pending_average = None
        return self.average

    def _eval_plan(self, event: Event) -> Sequence[Action]:
        """EVAL_START swaps the average in (when asked to and there is one to use), EVAL_END swaps it out."""
        if event is Event.EVAL_START and self.eval_with_average and self._has_average and not self.finished:
            return (self._swap_in_for_eval,)
        if event is Event.EVAL_END and self._eval_swap is not None:
            return (self._swap_out_after_eval,)
        return ()

    def _swap_in_for_eval(self, state: State, logger: Logger) -> None:
        with ExitStack() as stack:
            stack.enter_context(self._current_average().swapped_into_model())
            self._eval_swap = stack.pop_all()  # closed at EVAL_END

    def _swap_out_after_eval(self, state: State, logger: Logger) -> None:
        assert self._eval_swap is not None
        self._eval_swap.close()
        self._eval_swap = None

    def _replace_model_weights(self, state: State) -> None:
        """Copies the average into the model for good, keeping the training weights in ``training_weights``."""
        average = self._current_average()
        with torch.no_grad():
            self.training_weights = {name: tensor.detach().clone() for name, tensor in named_state_tensors(state.model)}
        average.copy_to_model()
        self.finished = True

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

    def state_dict(self) -> dict[str, Any]:
        return {"finished": self.finished}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.finished = bool(state["finished"])


class GridAveragingAlgorithm(AveragingAlgorithm):
    """EMA and LAWA: a snapshot at every firing of a :class:`~composer_swa.Schedule`; the average replaces
    the weights at FIT_END (``replace_at_fit_end``).

    Subclasses take the snapshot (:meth:`_snapshot`) and say what the model holds at the end (:meth:`_finish_message`).
    """

    events: ClassVar[frozenset[Event]] = frozenset(
        {Event.FIT_START, Event.BATCH_END, Event.EPOCH_END, Event.EVAL_START, Event.EVAL_END, Event.FIT_END}
    )
    may_own: ClassVar[frozenset[Resource]] = frozenset({Resource.FINAL_WEIGHTS, Resource.EVAL_WEIGHTS})
    replaces_weights_at: ClassVar[frozenset[Event]] = frozenset({Event.FIT_END})

    def __init__(
        self, schedule: Schedule, replace_at_fit_end: bool, eval_with_average: bool, offload: bool, use_buffers: bool = True
    ) -> None:
        super().__init__(schedule, eval_with_average, offload, use_buffers)
        self.replace_at_fit_end = replace_at_fit_end
        self._start_batch = 0

    def owned_resources(self, state: State) -> Mapping[Resource, Tenure]:
        owned = {Resource.FINAL_WEIGHTS} if self.replace_at_fit_end else set()
        if self.eval_with_average:
            owned.add(Resource.EVAL_WEIGHTS)
        return dict.fromkeys(owned, Tenure())

    def plan(self, event: Event, state: State) -> Sequence[Action]:
        if event is Event.BATCH_END or event is Event.EPOCH_END:
            return (self._scheduled_snapshot,) if self._updates.fires(state.timestamp, event is Event.EPOCH_END) else ()
        if event is Event.FIT_START:
            return (self._start,)
        if event is Event.FIT_END:
            return (self._finish,) if self.replace_at_fit_end and self._has_average and not self.finished else ()
        return self._eval_plan(event)

    def _start(self, state: State, logger: Logger) -> None:
        self._resolve_schedule(state)
        self._start_batch = state.to_batches(self.schedule.start)
        self._prepare_average(state)

    def _scheduled_snapshot(self, state: State, logger: Logger) -> None:
        if self._accepts_update(state):
            self._snapshot(state, logger)

    @abstractmethod
    def _snapshot(self, state: State, logger: Logger) -> None:
        """Takes the live weights into the average."""

    @abstractmethod
    def _finish_message(self) -> str:
        """What the model holds once the average replaced the weights."""

    def _finish(self, state: State, logger: Logger) -> None:
        self._replace_model_weights(state)
        logger.log_message(self._finish_message(), step=state.timestamp.batch_count)
