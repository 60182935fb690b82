"""``ComposerModel``: Composer's model protocol, so a Composer model trains here unchanged.

A ComposerModel unpacks the batch itself. The :class:`~composer_swa.Trainer` (and the statistics
passes, and the adapters' loops) call it through five methods, as Composer's Trainer does::

    outputs = model(batch)                                   # forward(batch): training, batch-norm passes
    loss = model.loss(outputs, batch)                        # per microbatch; backward() on it
    metrics = model.get_metrics(is_train=False)              # copied once per evaluation
    for batch in eval_dataloader:
        outputs = model.eval_forward(batch)
        for metric in metrics.values():
            model.update_metric(batch, outputs, metric)
    values = {name: metric.compute() for name, metric in metrics.items()}

A plain ``torch.nn.Module`` is called by the batch rule of :mod:`composer_swa.model_calls` instead.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from torchmetrics import Metric

    from composer_swa.loggers import Logger

__all__ = ["ComposerModel"]


class ComposerModel(torch.nn.Module, abc.ABC):
    """A model that takes whole batches: subclass it and implement :meth:`forward` and :meth:`loss`.

    For evaluation metrics implement :meth:`get_metrics` and :meth:`update_metric` too, and
    :meth:`eval_forward` where evaluation runs the model differently. Without metrics, evaluation
    runs and reports nothing but the events (Composer's behaviour).

    Attributes:
        logger: The run's :class:`~composer_swa.loggers.Logger`, set by the Trainer at construction;
            shared, not copied, by ``copy.deepcopy`` and left out of pickles.

    Example:
        >>> import torch.nn.functional as F
        >>> class Classifier(ComposerModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.model = torch.nn.Linear(4, 3)
        ...     def forward(self, batch):
        ...         inputs, _ = batch
        ...         return self.model(inputs)
        ...     def loss(self, outputs, batch):
        ...         _, targets = batch
        ...         return F.cross_entropy(outputs, targets)
        >>> model = Classifier()
        >>> batch = (torch.randn(2, 4), torch.tensor([0, 2]))
        >>> model.loss(model(batch), batch).shape, model.get_metrics(is_train=False)
        (torch.Size([]), {})
    """

    def __init__(self) -> None:
        super().__init__()
        self.logger: Logger | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> ComposerModel:
        # A logger holds open files and destinations: copies of the model (averages) share it.
        result = type(self).__new__(type(self))
        memo[id(self)] = result
        for key, value in self.__dict__.items():
            setattr(result, key, value if key == "logger" else copy.deepcopy(value, memo))
        return result

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["logger"] = None
        return state

    @abc.abstractmethod
    def forward(self, batch: Any) -> Any:
        """The model's outputs for one batch, as the dataloader yields it (unpack it here)."""

    @abc.abstractmethod
    def loss(self, outputs: Any, batch: Any, *args: Any, **kwargs: Any) -> torch.Tensor | Sequence[torch.Tensor]:
        """The loss to minimize, from :meth:`forward`'s ``outputs`` and the batch.

        A tensor, or several: a sequence is summed, a dict is summed unless it has a ``"total"``
        (each part averaged first), as Composer's Trainer does.
        """

    def eval_forward(self, batch: Any, outputs: Any | None = None) -> Any:
        """The outputs evaluation hands to :meth:`update_metric`: ``outputs`` if given, else ``self(batch)``."""
        return outputs if outputs is not None else self(batch)

    def get_metrics(self, is_train: bool) -> dict[str, Metric]:
        """The torchmetrics ``Metric`` objects to compute, by name; the Trainer uses deep copies of them."""
        return {}

    def update_metric(self, batch: Any, outputs: Any, metric: Metric) -> dict[str, Any] | None:
        """Updates ``metric`` with one evaluation batch and its :meth:`eval_forward` outputs."""
        raise NotImplementedError(
            f"{type(self).__name__}.get_metrics() returns metrics, so {type(self).__name__} must implement "
            "update_metric(batch, outputs, metric) (e.g. metric.update(outputs, targets))"
        )
