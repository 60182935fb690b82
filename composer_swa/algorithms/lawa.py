"""Latest weight averaging: the mean of the last k snapshots, a sliding window over training."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from composer_swa.algorithms.arguments import check_flag, update_schedule
from composer_swa.algorithms.averaging_algorithm import GridAveragingAlgorithm
from composer_swa.averaging.model_average import ModelAverage
from composer_swa.time import Time, as_time

if TYPE_CHECKING:
    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["LAWA"]


class LAWA(GridAveragingAlgorithm):
    """Latest weight averaging (Kaddour, "Stop Wasting My Time! Saving Days of ImageNet and BERT
    Training with Latest Weight Averaging", 2022, https://arxiv.org/abs/2209.14981; Sanyal et al.,
    "Early Weight Averaging meets High Learning Rates for LLM Pre-training", 2023,
    https://arxiv.org/abs/2306.03241).

    A snapshot of the weights is taken every ``update_interval`` from ``lawa_start`` on (counted from
    ``lawa_start``, like :class:`EMA`'s updates), and the last ``window`` snapshots are kept. Their equal-weight
    mean is what evaluation uses during fit and what the model holds after FIT_END (the training
    weights stay in ``training_weights``; ``replace_at_fit_end=False`` keeps them in the model).
    Unlike SWA's running mean, old snapshots leave the window, so the average follows training.

    Batch norm and memory: ``window + 1`` fp32 copies of the parameters and floating buffers, always
    on the CPU so that the accelerator holds none of them; running statistics are averaged like
    weights and integer buffers come from the newest snapshot. The mean is recomputed from the
    snapshots only when it is needed (evaluation, FIT_END, ``state_dict``), so taking a snapshot
    costs one device-to-host copy.

    Resuming: the checkpoint stores these arguments. Once it holds snapshots, a resumed run may not
    change ``window``, ``update_interval`` or ``lawa_start``: the saved snapshots were taken and kept
    for the old ones (a ValueError). Any other change is a warning naming it. A checkpoint written
    before arguments were stored cannot be checked (a warning says so).

    Args:
        window: How many of the latest snapshots to average (``k``).
        update_interval: Time between snapshots, in ``ba`` or ``ep``.
        lawa_start: When snapshots start.
        replace_at_fit_end: Leave the window's mean in the model at FIT_END.
        eval_with_average: Evaluate with the window's mean during fit.
        use_buffers: Average floating buffers too; ``False``: the mean holds the live buffers of the newest snapshot.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from composer_swa import Trainer
        >>> data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), batch_size=16)
        >>> lawa = LAWA(window=3, update_interval="1ep")
        >>> trainer = Trainer(torch.nn.Linear(4, 2), data, max_duration="5ep", algorithms=[lawa], progress_bar=False, loggers=[])
        >>> trainer.fit()
        >>> lawa.snapshot_batches  # the model holds the mean of the weights after these batches
        [12, 16, 20]
    """

    stored_arguments: ClassVar[tuple[str, ...]] = (
        "window", "update_interval", "lawa_start", "replace_at_fit_end", "eval_with_average", "use_buffers",
    )  # fmt: skip

    def __init__(
        self,
        window: int = 5,
        update_interval: Time | str = "1ep",
        lawa_start: Time | str = "0.0dur",
        replace_at_fit_end: bool = True,
        eval_with_average: bool = True,
        use_buffers: bool = True,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1, got {window!r}")
        self.window = window
        schedule = update_schedule(update_interval, start=as_time(lawa_start, "lawa_start"))
        flags = (check_flag(replace_at_fit_end, "replace_at_fit_end"), check_flag(eval_with_average, "eval_with_average"))
        super().__init__(schedule, *flags, offload=True, use_buffers=check_flag(use_buffers, "use_buffers"))
        self.snapshots: deque[ModelAverage] = deque()
        #: The completed-batch count of each snapshot in the window, oldest first.
        self.snapshot_batches: list[int] = []
        self._mean_is_current = False
        self._pending_snapshots: list[dict[str, Any]] | None = None

    @property
    def lawa_start(self) -> Time:
        return self.schedule.start

    @property
    def _has_average(self) -> bool:
        return bool(self.snapshots)

    def locked_arguments(self) -> dict[str, str]:
        if not self.snapshot_batches:  # loaded at once; the snapshots themselves wait for FIT_START
            return {}
        why = f"the saved window holds snapshots after batches {self.snapshot_batches}, taken and kept for the old values"
        return dict.fromkeys(("window", "update_interval", "lawa_start"), why)

    def _start(self, state: State, logger: Logger) -> None:
        super()._start(state, logger)
        if self._pending_snapshots is not None:
            for saved in self._pending_snapshots:
                self._new_slot(state).load_state_dict(saved)
            self._pending_snapshots = None
            self._mean_is_current = False

    def _snapshot(self, state: State, logger: Logger) -> None:
        self._new_slot(state).copy_from_model()
        self.snapshot_batches = [*self.snapshot_batches, state.timestamp.batch_count][-self.window :]
        self._mean_is_current = False

    def _finish_message(self) -> str:
        return (
            f"LAWA: the model now holds the mean of the last {len(self.snapshots)} snapshots "
            f"(batches {self.snapshot_batches}); the training weights are in LAWA.training_weights"
        )

    def _new_slot(self, state: State) -> ModelAverage:
        """The snapshot to overwrite next: the oldest once the window is full, else a new one."""
        full = len(self.snapshots) == self.window
        slot = self.snapshots.popleft() if full else ModelAverage(state.model, device="cpu", use_buffers=self.use_buffers)
        self.snapshots.append(slot)
        return slot

    def _current_average(self) -> ModelAverage:
        return self.window_mean()

    def window_mean(self) -> ModelAverage:
        """The mean of the snapshots in the window, in ``average`` (an fp32 running mean over them)."""
        assert self.average is not None and self.snapshots, "LAWA has no snapshot yet"
        if not self._mean_is_current:
            for index, snapshot in enumerate(self.snapshots):
                if index == 0:
                    self.average.copy_from_average(snapshot)
                else:
                    self.average.interpolate_toward_average(snapshot, 1.0 / (index + 1))
            self._mean_is_current = True
        return self.average

    def summary(self) -> dict[str, Any]:
        return {
            "start_batch": self._start_batch,
            "snapshot_batches": list(self.snapshot_batches),
            "swapped_in": self.finished,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "snapshots": [snapshot.full_state_dict() for snapshot in self.snapshots],
            "snapshot_batches": list(self.snapshot_batches),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["snapshots"]) > self.window:
            raise ValueError(f"the checkpoint holds {len(state['snapshots'])} LAWA snapshots, more than window={self.window}")
        super().load_state_dict(state)
        self.snapshot_batches = [int(batch) for batch in state["snapshot_batches"]]
        self.snapshots.clear()
        self._pending_snapshots = list(state["snapshots"])  # restored at FIT_START, once the model is known
