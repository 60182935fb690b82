"""What the framework callbacks share: the algorithms to run, and a runner from the start of training."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from composer_swa.batch_resolver import BatchResolver
from composer_swa.integrations.runner import AlgorithmRunner, check_algorithms

if TYPE_CHECKING:
    from composer_swa.events import Algorithm, Callback
    from composer_swa.loggers import LoggerDestination

__all__: list[str] = []


class FrameworkAdapter:
    """Base of ``HuggingFaceCallback`` and ``LightningCallback``: settings checked at construction,
    and the :class:`AlgorithmRunner` built once the framework knows the model, optimizer and data.

    Example:
        >>> from composer_swa import SWA
        >>> FrameworkAdapter([SWA()]).runner is None
        True
    """

    #: The hook that builds the runner, for the error a hook before it raises.
    start_hook: ClassVar[str] = "the start of training"

    def __init__(
        self,
        algorithms: Sequence[Algorithm],
        *,
        callbacks: Sequence[Callback] = (),
        loggers: Sequence[LoggerDestination] | None = None,
        forward: Callable[[Any], Any] | None = None,
    ) -> None:
        check_algorithms(algorithms)
        self.algorithms = list(algorithms)
        self.callbacks = list(callbacks)
        self.loggers = loggers
        self.forward = forward
        self.runner: AlgorithmRunner | None = None

    def _build_runner(
        self,
        model: torch.nn.Module,
        optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
        train_dataloader: Iterable[Any],
        resolver: BatchResolver,
    ) -> AlgorithmRunner:
        return AlgorithmRunner(
            self.algorithms,
            model,
            optimizers,
            train_dataloader,
            max_duration=resolver.max_duration,
            callbacks=self.callbacks,
            loggers=self.loggers,
            forward=self.forward,
            resolver=resolver,
        )

    @property
    def _runner(self) -> AlgorithmRunner:
        if self.runner is None:
            raise RuntimeError(f"{type(self).__name__} got a training hook before {self.start_hook}")
        return self.runner
