"""Running composer_swa algorithms inside a training loop we do not own: yours, Hugging Face's, Lightning's."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from composer_swa.batch_resolver import BatchResolver
from composer_swa.compiled import split_compiled
from composer_swa.events import Algorithm, Resource
from composer_swa.events.loop import Loop
from composer_swa.loggers import ConsoleLogger, Logger, LoggerDestination
from composer_swa.state import State
from composer_swa.time import Time

if TYPE_CHECKING:
    from torchmetrics import Metric

    from composer_swa.events import Callback

__all__ = ["AlgorithmRunner", "check_algorithms"]


def check_algorithms(algorithms: Sequence[Algorithm]) -> None:
    """Raises unless every item is an :class:`~composer_swa.Algorithm` a loop we do not own can run.

    Example:
        >>> from composer_swa import SWATS
        >>> check_algorithms([SWATS()])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: SWATS replaces the optimizer object, ... use SWATS with composer_swa.Trainer
    """
    for algorithm in algorithms:
        if not isinstance(algorithm, Algorithm):
            raise TypeError(f"algorithms must hold composer_swa algorithms (SWA, EMA, LAWA, ...), got {algorithm!r}")
        if Resource.OPTIMIZER in algorithm.may_own:
            raise ValueError(
                f"{algorithm.name} replaces the optimizer object, which a loop that is not composer_swa's Trainer keeps "
                f"its own reference to and would go on stepping; use {algorithm.name} with composer_swa.Trainer"
            )


class AlgorithmRunner:
    """Fires composer_swa's events from a loop that is not our Trainer, so any algorithm runs unchanged.

    It owns a :class:`~composer_swa.State` and the :class:`~composer_swa.events.loop.Loop` our Trainer
    drives too (which fires the events, counts time and closes epochs); the loop calls one method at
    each point of :class:`~composer_swa.Event`'s contract. The loop keeps everything else:
    the forward and backward passes, the optimizer and scheduler steps, checkpoints of the model and
    optimizer. What the runner adds to a checkpoint is :meth:`state_dict`: the timestamp and every
    algorithm's state (SWA's average and snapshot count, EMA's average, ...).

    An epoch whose length is known closes with its last batch (``EPOCH_END`` right after that
    ``BATCH_END``), so evaluation and checkpoints the loop runs after the batch see the epoch's
    snapshot, as our Trainer's epoch-end evaluation and checkpoints do. ``epoch_end()`` closes epochs
    of unknown length and is a no-op otherwise.

    Args:
        algorithms: The algorithms, in the order they run at each event.
        model: The model the loop trains (unwrapped; a ``torch.compile``'d one stands for its original
            module, which names the averages and runs statistics passes, see :mod:`composer_swa.compiled`).
        optimizers: The optimizer(s) the loop steps; SWA's LR schedule writes their ``param_groups``.
        train_dataloader: One epoch of training batches; SWA's batch-norm pass iterates it once.
        max_duration: The run's length (``"10ep"``, ``"2000ba"``); ``dur`` times are fractions of it.
        callbacks: composer_swa callbacks, run after the algorithms.
        loggers: Where algorithms' messages go; default: the console.
        forward: Runs the model on one batch, for statistics passes; default: a ComposerModel's
            ``model(batch)``, else ``model(x)`` for ``(x, y)``, ``model(**batch)`` for a dict.
        resolver: How times become batch counts, when the loader alone cannot tell (an adapter
            builds it from what its framework knows).

    Raises:
        ValueError: An algorithm replaces the optimizer object (SWATS), which a loop that keeps its
            own reference to the optimizer would never see.

    Example:
        >>> import torch
        >>> from composer_swa import SWA
        >>> model = torch.nn.Linear(2, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> data = [(torch.randn(4, 2), torch.randn(4, 1)) for _ in range(5)]
        >>> swa = SWA(swa_start="0.6dur", update_interval="1ba")
        >>> runner = AlgorithmRunner([swa], model, optimizer, data, max_duration="2ep", loggers=[])
        >>> runner.fit_start()
        >>> for epoch in range(2):
        ...     for x, y in data:
        ...         runner.batch_start()
        ...         optimizer.zero_grad()
        ...         torch.nn.functional.mse_loss(model(x), y).backward()
        ...         optimizer.step()
        ...         runner.batch_end(samples=len(x))
        >>> runner.fit_end()
        >>> swa.n_averaged, swa.finished  # snapshots after batches 6..10, then swapped in
        (5, True)
    """

    def __init__(
        self,
        algorithms: Sequence[Algorithm],
        model: torch.nn.Module,
        optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
        train_dataloader: Iterable[Any],
        max_duration: Time | str | int,
        *,
        callbacks: Sequence[Callback] = (),
        loggers: Sequence[LoggerDestination] | None = None,
        forward: Callable[[Any], Any] | None = None,
        resolver: BatchResolver | None = None,
    ) -> None:
        check_algorithms(algorithms)
        optimizer_list = [optimizers] if isinstance(optimizers, torch.optim.Optimizer) else list(optimizers)
        self.state = State(
            model=split_compiled(model)[0],
            max_duration=max_duration,
            train_dataloader=train_dataloader,
            optimizers=optimizer_list,
            algorithms=algorithms,
            callbacks=callbacks,
        )
        if resolver is not None:
            self.state.resolver = resolver
        self.state.run_forward = forward
        self.logger = Logger(list(loggers) if loggers is not None else [ConsoleLogger()])
        self._started = self._ended = False
        #: The driver our Trainer uses too: it fires the events, counts time and closes epochs.
        self.loop = Loop(self.state, self.logger)
        self.engine = self.loop.engine

    @property
    def owns_lr(self) -> bool:
        """Whether an algorithm schedules the LR now: a plain loop skips its own ``scheduler.step()`` then."""
        return self.state.lr_owner is not None

    @property
    def is_finished(self) -> bool:
        """Whether ``max_duration`` is reached."""
        return self.state.is_finished

    def fit_start(self) -> None:
        """Fires FIT_START: times resolve to batch counts and algorithms set up (after any :meth:`load_state_dict`)."""
        if self._started:
            raise RuntimeError("fit_start() was already called for this runner; build a new runner for a new run")
        self._started = True
        self.loop.fit_start()

    def epoch_start(self) -> None:
        """Fires EPOCH_START (for callbacks; no built-in algorithm acts on it)."""
        self.loop.epoch_start()

    def batch_start(self) -> None:
        """Fires BATCH_START once per optimizer step, before its first forward pass (SWA sets the LR here)."""
        self._check_started("batch_start")
        self.loop.batch_start()

    def after_train_batch(self) -> None:
        """Fires AFTER_TRAIN_BATCH: call it after the step's last backward (and, under fp16, after
        ``scaler.unscale_(optimizer)``) and before ``optimizer.step()``; GradientClipping clips here."""
        self._check_started("after_train_batch")
        self.loop.after_train_batch()

    def batch_end(self, samples: int | None = None) -> None:
        """Counts the optimizer step that just finished and fires BATCH_END (snapshots, SWA's swap).

        Args:
            samples: Samples in the step, over all processes; default: a full batch, or the short
                last batch of the epoch, from what the resolver knows.
        """
        self._check_started("batch_end")
        samples = self._expected_samples() if samples is None else samples
        tokens_per_sample = self.state.resolver.tokens_per_sample or 0
        self.loop.batch_end(samples, round(samples * tokens_per_sample))
        if self.loop.epoch_is_full:
            self.loop.end_epoch()

    def epoch_end(self) -> None:
        """Closes an epoch of unknown length (fires EPOCH_END); a no-op where the last batch already closed it.

        Raises:
            ValueError: The loop ended an epoch of known length early, before the run's end.
        """
        done = self.state.timestamp.batch_in_epoch
        if done == 0:  # no batch since the last EPOCH_END
            return
        expected = self.state.batches_per_epoch
        if expected is None:
            self.loop.end_epoch()
        elif not self.state.is_finished:
            raise ValueError(
                f"the loop ended an epoch after {done} optimizer steps, but an epoch "
                f"has {expected}; 'ep' and 'dur' times would mean other batches than the loop trains"
            )

    def eval_start(self) -> None:
        """Fires EVAL_START: an algorithm with ``eval_with_average=True`` swaps its average in."""
        self.loop.eval_start()

    def eval_end(self, metrics: Mapping[str, float | torch.Tensor | Metric] | None = None, label: str = "eval") -> None:
        """Fires EVAL_END with this evaluation's metrics: the live weights come back.

        Args:
            metrics: The loop's metrics by name: numbers (or torchmetrics ``Metric`` objects). They
                become ``state.eval_metrics[label]``, Composer's shape, where a number is a metric
                whose ``compute()`` returns it.
            label: The eval data's name.
        """
        from torchmetrics import Metric  # loads (seconds) at the first evaluation, not with the adapters

        from composer_swa.metrics import reported_metric

        by_name = {name: m if isinstance(m, Metric) else reported_metric(m) for name, m in (metrics or {}).items()}
        self.loop.eval_end({label: by_name})

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """``eval_start()`` on entry and ``eval_end()`` on exit, even if evaluation raises; the loop may put
        its metrics in ``state.eval_metrics`` (``{label: {name: Metric}}``) inside the block."""
        self.eval_start()
        try:
            yield
        finally:
            self.loop.eval_end(self.state.eval_metrics)

    def fit_end(self) -> None:
        """Fires FIT_END once (EMA and LAWA copy their average into the model here)."""
        if self._started and not self._ended:
            self._ended = True
            self.loop.fit_end()

    def state_dict(self) -> dict[str, Any]:
        """The timestamp and every algorithm's and callback's state: tensors and plain containers,
        so it loads with ``torch.load(..., weights_only=True)``. The loop saves the model and optimizer."""
        return {"timestamp": self.state.timestamp.state_dict(), **self.state.algorithms_state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`; call it before :meth:`fit_start`, with the same algorithm list."""
        if self._started:
            raise RuntimeError("load_state_dict() must come before fit_start(): FIT_START sets algorithms up from it")
        self.state.load_algorithms_state_dict(state)
        self.state.timestamp.load_state_dict(state["timestamp"])

    def _check_started(self, method: str) -> None:
        if not self._started:
            raise RuntimeError(f"{method}() before fit_start(): call runner.fit_start() once, before the first batch")

    def _expected_samples(self) -> int:
        resolver = self.state.resolver
        if resolver.batch_size is None:
            return 0
        per_epoch, samples = resolver.batches_per_epoch, resolver.samples_per_epoch
        if per_epoch is not None and samples is not None and self.state.timestamp.batch_in_epoch + 1 == per_epoch:
            return samples - (per_epoch - 1) * resolver.batch_size
        return resolver.batch_size
