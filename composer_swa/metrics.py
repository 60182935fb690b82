"""Evaluation metrics: torchmetrics ``Metric`` objects, and Composer's shape for a run's metrics.

``state.eval_metrics`` is ``{label: {name: Metric}}``, as in Composer: the label is the eval
dataloader's (``"eval"``), the names those of ``model.get_metrics(is_train=False)`` for a
:class:`~composer_swa.models.ComposerModel`, ``"loss"`` and (for class logits) ``"accuracy"`` for
a plain module. The Trainer logs and returns each computed value as ``"{label}/{name}"``
(``"eval/loss"``, ``"eval/MulticlassAccuracy"``); torchmetrics sums the metrics' states over
processes when they are computed under torch.distributed.

:class:`CrossEntropy`, :class:`LanguageCrossEntropy` and :class:`LanguagePerplexity` are
Composer's metrics of those names (``composer.metrics``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torchmetrics import Metric

from composer_swa.loss import soft_cross_entropy

__all__ = ["CrossEntropy", "LanguageCrossEntropy", "LanguagePerplexity"]


class CrossEntropy(Metric):
    """The mean over batches of :func:`~composer_swa.loss.soft_cross_entropy` (Composer's ``CrossEntropy``).

    Example:
        >>> metric = CrossEntropy()
        >>> metric.update(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))
        >>> round(float(metric.compute()), 4)  # log(2)
        0.6931
    """

    full_state_update = False
    sum_loss: torch.Tensor
    total_batches: torch.Tensor

    def __init__(self, ignore_index: int = -100, dist_sync_on_step: bool = False) -> None:
        super().__init__(dist_sync_on_step=dist_sync_on_step)
        self.ignore_index = ignore_index
        self.add_state("sum_loss", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total_batches", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> None:
        self.sum_loss += soft_cross_entropy(preds, targets, ignore_index=self.ignore_index)
        self.total_batches += 1

    def compute(self) -> torch.Tensor:
        return self.sum_loss / self.total_batches


class LanguageCrossEntropy(Metric):
    """Cross-entropy per token over language-model logits, ``ignore_index`` tokens left out.

    ``output`` is the logits, or a mapping (a transformers output) holding ``"logits"``.

    Example:
        >>> metric = LanguageCrossEntropy()
        >>> metric.update(torch.zeros(1, 3, 4), torch.tensor([[1, 2, -100]]))
        >>> round(float(metric.compute()), 4)  # log(4), over the two counted tokens
        1.3863
    """

    full_state_update = False
    sum_loss: torch.Tensor
    total_items: torch.Tensor

    def __init__(self, dist_sync_on_step: bool = False, ignore_index: int = -100) -> None:
        super().__init__(dist_sync_on_step=dist_sync_on_step)
        self.ignore_index = ignore_index
        self.loss_fn = torch.nn.CrossEntropyLoss(ignore_index=ignore_index, reduction="sum")
        self.add_state("sum_loss", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total_items", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, output: Mapping[str, Any] | torch.Tensor, target: torch.Tensor) -> None:
        logits = output["logits"] if isinstance(output, Mapping) else output
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"LanguageCrossEntropy takes logits or a mapping with 'logits', got {type(output).__name__}")
        target = target.reshape(-1)
        self.sum_loss += self.loss_fn(logits.reshape(target.shape[0], -1), target)
        self.total_items += (target != self.ignore_index).sum()

    def compute(self) -> torch.Tensor:
        return self.sum_loss / self.total_items


class LanguagePerplexity(LanguageCrossEntropy):
    """``exp`` of :class:`LanguageCrossEntropy`.

    Example:
        >>> metric = LanguagePerplexity()
        >>> metric.update(torch.zeros(1, 2, 4), torch.tensor([[1, 2]]))
        >>> round(float(metric.compute()), 4)
        4.0
    """

    def compute(self) -> torch.Tensor:
        return torch.exp(super().compute())


class ArgmaxAccuracy(Metric):
    """The fraction of positions whose largest logit is the integer target: a plain module's ``accuracy``.

    Logits are ``(N, C)`` for targets ``(N,)``, or ``(N, ..., C)`` for ``(N, ...)`` (tokens).
    """

    full_state_update = False
    correct: torch.Tensor
    total: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.correct += (logits.argmax(dim=-1) == targets).sum()
        self.total += targets.numel()

    def compute(self) -> torch.Tensor:
        return self.correct / self.total


def is_class_logits(outputs: Any, targets: Any) -> bool:
    """Whether ``outputs`` are class logits for the integer ``targets`` (what :class:`ArgmaxAccuracy` takes)."""
    if not isinstance(outputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return False
    return not targets.is_floating_point() and outputs.dim() == targets.dim() + 1 and outputs.shape[:-1] == targets.shape


class WeightedMean(Metric):
    """``sum(value * weight) / sum(weight)`` in float64 (float32 on MPS); a NaN value makes the mean NaN.

    (torchmetrics' ``MeanMetric`` drops NaNs, or with ``nan_strategy="disable"`` ignores the weights.)

    Example:
        >>> mean = WeightedMean()
        >>> mean.update(torch.tensor(1.0), weight=3)
        >>> mean.update(torch.tensor(3.0), weight=1)
        >>> float(mean.compute())
        1.5
    """

    full_state_update = False
    total: torch.Tensor
    weight: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, value: float | torch.Tensor, weight: float = 1.0) -> None:
        self.total += torch.as_tensor(value, dtype=self.total.dtype, device=self.total.device) * weight
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return self.total / self.weight


def mean_loss_metric(device: torch.device) -> WeightedMean:
    """A plain module's ``loss``: the batches' losses, weighted by their samples."""
    metric = WeightedMean()
    if device.type == "mps":  # no float64 there
        metric.set_dtype(torch.float32)
    return metric.to(device)


def reported_metric(value: float | torch.Tensor) -> Metric:
    """A metric whose value is ``value``: how a number another framework computed enters ``state.eval_metrics``.

    Example:
        >>> float(reported_metric(0.25).compute())
        0.25
    """
    metric = WeightedMean()
    metric.update(value)
    return metric


def metric_values(metrics: Mapping[str, Mapping[str, Metric]]) -> dict[str, float]:
    """``{"{label}/{name}": value}``: every metric computed (under torch.distributed, over all processes).

    A metric whose value is not one number (e.g. ``average=None`` per-class accuracy) stays in
    ``state.eval_metrics`` but is left out here, with a warning: loggers and tables take numbers.

    Example:
        >>> metric_values({"eval": {"half": reported_metric(0.5)}})
        {'eval/half': 0.5}
    """
    values = {}
    for label, by_name in metrics.items():
        for name, metric in by_name.items():
            value = metric.compute()
            if (isinstance(value, torch.Tensor) and value.numel() == 1) or isinstance(value, (int, float)):
                values[f"{label}/{name}"] = float(value)
            else:
                warnings.warn(
                    f"metric {label}/{name} computed {type(value).__name__} "
                    f"{tuple(value.shape) if isinstance(value, torch.Tensor) else ''}, not one number; it is not "
                    f"logged (it stays in state.eval_metrics[{label!r}][{name!r}])",
                    stacklevel=2,
                )
    return values
