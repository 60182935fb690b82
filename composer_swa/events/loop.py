"""The one loop driver: every training loop fires its events, counts its time and closes its epochs here.

Our :class:`~composer_swa.Trainer` drives a :class:`Loop` over its own data;
:class:`~composer_swa.integrations.AlgorithmRunner` wraps one for a loop we do not own (a user's,
Hugging Face's, Lightning's). So the order of events, when a batch counts and what an epoch's end
does are the same for all of them by construction. What stays with each driver is who iterates the
data and when an epoch is over: our Trainer closes it when its loader runs out (after the epoch's
last evaluation by batch count), the runner with the epoch's last batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from composer_swa.events.engine import Engine
from composer_swa.events.event import Event

if TYPE_CHECKING:
    from torchmetrics import Metric

    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["Loop"]

BeforeUpdate = Callable[["State", Event], None]


class Loop:
    """Fires one run's events in :class:`~composer_swa.Event`'s order and keeps its timestamp.

    Args:
        state: The run's state; its timestamp advances here and nowhere else.
        logger: Where algorithms and callbacks log.
        before_update: Called with the state and the event once time has advanced and before
            BATCH_END or EPOCH_END fire: the Trainer checks the live weights there, before an
            average takes them in.

    Example:
        >>> import torch
        >>> from composer_swa import State
        >>> from composer_swa.loggers import Logger
        >>> state = State(model=torch.nn.Linear(2, 1), max_duration="2ba", train_dataloader=[0, 1])
        >>> loop = Loop(state, Logger())
        >>> loop.fit_start()
        >>> loop.batch_start()
        >>> loop.batch_end(samples=8, tokens=0)
        >>> state.timestamp.batch_count, state.timestamp.sample_count, loop.epoch_is_full
        (1, 8, False)
    """

    def __init__(self, state: State, logger: Logger, before_update: BeforeUpdate | None = None) -> None:
        self.state = state
        self.engine = Engine(state, logger)
        self._before_update = before_update
        self._in_batch = False  # BATCH_START fired for a batch not yet ended
        self.engine.run_event(Event.INIT)

    @property
    def epoch_is_full(self) -> bool:
        """Whether the epoch has all its batches (never, while the epoch's length is unknown)."""
        return self.state.timestamp.batch_in_epoch == self.state.batches_per_epoch

    def fit_start(self) -> None:
        """FIT_START: times resolve to batch counts and algorithms set up."""
        self._in_batch = False  # a batch an exception cut short in an earlier fit() is not this run's
        self.engine.run_event(Event.FIT_START)

    def epoch_start(self) -> None:
        self.engine.run_event(Event.EPOCH_START)

    def batch_start(self) -> None:
        """BATCH_START, once per optimizer step however often a framework announces its micro-batches."""
        if not self._in_batch:
            self._in_batch = True
            self.engine.run_event(Event.BATCH_START)

    def after_forward(self) -> None:
        self.engine.run_event(Event.AFTER_FORWARD)

    def after_loss(self) -> None:
        self.engine.run_event(Event.AFTER_LOSS)

    def after_backward(self) -> None:
        self.engine.run_event(Event.AFTER_BACKWARD)

    def after_train_batch(self) -> None:
        """AFTER_TRAIN_BATCH: the step's whole gradient is in and the optimizer has not stepped."""
        self.engine.run_event(Event.AFTER_TRAIN_BATCH)

    def batch_end(self, samples: int, tokens: int, counted: Callable[[], None] | None = None) -> None:
        """Counts the optimizer step that just finished (``samples`` and ``tokens`` over all processes), then BATCH_END.

        ``counted`` runs right after the count, before anything else sees it: the Trainer steps its
        LR schedulers there, so a schedule of the run's time gives the next batch its own LR.
        """
        self._in_batch = False
        self.state.timestamp.advance_batch(samples, tokens)
        if counted is not None:
            counted()
        if self._before_update is not None:
            self._before_update(self.state, Event.BATCH_END)
        self.engine.run_event(Event.BATCH_END)

    def end_epoch(self, counted: Callable[[], None] | None = None) -> None:
        """Counts the epoch, then EPOCH_END (``counted`` runs in between, as in :meth:`batch_end`)."""
        self.state.timestamp.advance_epoch()
        if counted is not None:
            counted()
        if self._before_update is not None:
            self._before_update(self.state, Event.EPOCH_END)
        self.engine.run_event(Event.EPOCH_END)

    def eval_start(self) -> None:
        """EVAL_START: an algorithm with ``eval_with_average=True`` swaps its average in."""
        self.engine.run_event(Event.EVAL_START)

    def eval_batch_end(self) -> None:
        self.engine.run_event(Event.EVAL_BATCH_END)

    def eval_end(self, metrics: Mapping[str, Mapping[str, Metric]] | None) -> None:
        """EVAL_END with this evaluation's ``{label: {name: Metric}}`` in ``state.eval_metrics`` (other labels
        stay, as in Composer): the live weights come back."""
        self.state.eval_metrics = {**self.state.eval_metrics, **{label: dict(m) for label, m in (metrics or {}).items()}}
        self.engine.run_event(Event.EVAL_END)

    def fit_end(self) -> None:
        """FIT_END (EMA and LAWA copy their average into the model here)."""
        self.engine.run_event(Event.FIT_END)
