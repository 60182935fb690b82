"""``ComposerClassifier``: a ComposerModel for ``(inputs, targets)`` classification around any module."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from composer_swa.loss import soft_cross_entropy
from composer_swa.metrics import CrossEntropy
from composer_swa.models.base import ComposerModel

__all__ = ["ComposerClassifier"]


class ComposerClassifier(ComposerModel):
    """Wraps ``module`` for ``(inputs, targets)`` batches: ``module(inputs)``, ``loss_fn(outputs, targets)``.

    Composer's defaults: the loss is :func:`~composer_swa.loss.soft_cross_entropy` (class indices or
    probabilities); training metrics ``MulticlassAccuracy(average="micro")``; evaluation metrics
    :class:`~composer_swa.metrics.CrossEntropy` and ``MulticlassAccuracy(average="micro")``, logged
    as ``eval/CrossEntropy`` and ``eval/MulticlassAccuracy``.

    Args:
        module: The network; its outputs are class logits.
        num_classes: Classes; needed unless ``module.num_classes`` exists or both metric sets are given
            (``module.num_classes`` wins over a different value, with a warning).
        train_metrics: A metric or ``MetricCollection`` for training.
        val_metrics: A metric or ``MetricCollection`` for evaluation.
        loss_fn: ``loss_fn(outputs, targets)``.

    Example:
        >>> model = ComposerClassifier(torch.nn.Linear(4, 3), num_classes=3)
        >>> sorted(model.get_metrics(is_train=False))
        ['CrossEntropy', 'MulticlassAccuracy']
        >>> batch = (torch.randn(2, 4), torch.tensor([0, 2]))
        >>> model(batch).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        module: torch.nn.Module,
        num_classes: int | None = None,
        train_metrics: Metric | MetricCollection | None = None,
        val_metrics: Metric | MetricCollection | None = None,
        loss_fn: Callable[..., torch.Tensor] = soft_cross_entropy,
    ) -> None:
        super().__init__()
        self.module = module
        self._loss_fn = loss_fn
        module_classes = getattr(module, "num_classes", None)
        if module_classes is not None:
            if num_classes is not None and num_classes != module_classes:
                warnings.warn(
                    f"num_classes={num_classes!r} differs from module.num_classes={module_classes!r}; using the module's",
                    stacklevel=2,
                )
            num_classes = module_classes
        self.num_classes = num_classes
        if num_classes is None and (train_metrics is None or val_metrics is None):
            raise ValueError(
                "ComposerClassifier needs the number of classes: pass num_classes=..., give the module a num_classes "
                "attribute, or pass both train_metrics and val_metrics"
            )
        if train_metrics is None:
            train_metrics = MulticlassAccuracy(num_classes=num_classes, average="micro")
        if val_metrics is None:
            val_metrics = MetricCollection([CrossEntropy(), MulticlassAccuracy(num_classes=num_classes, average="micro")])
        self.train_metrics = train_metrics
        self.val_metrics = val_metrics

    def forward(self, batch: Any) -> torch.Tensor:
        inputs, _ = batch
        return self.module(inputs)

    def loss(self, outputs: torch.Tensor, batch: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        _, targets = batch
        return self._loss_fn(outputs, targets, *args, **kwargs)

    def get_metrics(self, is_train: bool = False) -> dict[str, Metric]:
        metrics = self.train_metrics if is_train else self.val_metrics
        if isinstance(metrics, Metric):
            return {type(metrics).__name__: metrics}
        return dict(metrics.items())

    def update_metric(self, batch: Any, outputs: Any, metric: Metric) -> None:
        _, targets = batch
        metric.update(outputs, targets)
