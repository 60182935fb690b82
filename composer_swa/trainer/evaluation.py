"""Evaluation metrics: mean loss and, for class logits, accuracy, weighted by samples."""

from __future__ import annotations

from typing import Any

import torch

from composer_swa.distributed.process_group import is_distributed, reduce_sum

__all__: list[str] = []


def accuracy_counts(outputs: Any, targets: Any) -> tuple[int, int] | None:
    """``(correct, total)`` when ``outputs`` are class logits for integer ``targets``; otherwise ``None``.

    Logits are ``(N, C)`` for targets ``(N,)``, or ``(N, ..., C)`` for targets ``(N, ...)`` (e.g. tokens).
    """
    if not isinstance(outputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return None
    if targets.is_floating_point() or outputs.dim() != targets.dim() + 1 or outputs.shape[:-1] != targets.shape:
        return None
    return int((outputs.argmax(dim=-1) == targets).sum()), targets.numel()


class MetricTotals:
    """Running sums for one evaluation, reduced to ``{"eval/loss": ..., "eval/accuracy": ...}``."""

    def __init__(self) -> None:
        self.loss_sum = 0.0
        self.samples = 0
        self.correct = 0
        self.predictions = 0

    def add(self, loss: torch.Tensor, samples: int, counts: tuple[int, int] | None) -> None:
        self.loss_sum += float(loss) * samples
        self.samples += samples
        if counts is not None:
            self.correct += counts[0]
            self.predictions += counts[1]

    def reduce_across_processes(self, device: torch.device) -> None:
        """Sums the totals over every process, so each reports the metrics of the whole eval set."""
        if not is_distributed():
            return
        totals = torch.tensor([self.loss_sum, self.samples, self.correct, self.predictions], dtype=torch.float64, device=device)
        reduce_sum(totals)
        self.loss_sum = float(totals[0])
        self.samples, self.correct, self.predictions = (int(value) for value in totals[1:].tolist())

    def compute(self) -> dict[str, float]:
        metrics = {"eval/loss": self.loss_sum / max(self.samples, 1)}
        if self.predictions:
            metrics["eval/accuracy"] = self.correct / self.predictions
        return metrics
