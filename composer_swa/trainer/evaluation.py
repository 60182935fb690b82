"""Evaluation: one pass over the eval data between EVAL_START and EVAL_END, and its metrics (mean loss and,
for class logits, accuracy, weighted by samples and summed over every process)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

from composer_swa.batches import batch_num_samples, to_device
from composer_swa.distributed.process_group import is_distributed, reduce_sum
from composer_swa.model_calls import compute_loss, forward_batch
from composer_swa.trainer.checks import check_scalar_loss

if TYPE_CHECKING:
    from composer_swa.events.loop import Loop

__all__: list[str] = []


def evaluate(
    loop: Loop,
    module: torch.nn.Module,
    batches: Iterable[Any],
    loss_fn: Callable[[Any, Any], torch.Tensor] | None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
) -> dict[str, float]:
    """Evaluates what the model holds now (an algorithm may swap its average in at EVAL_START) on ``batches``.

    Args:
        loop: The run's loop; ``loop.state.model`` is put in eval mode for the pass and back after it.
        module: What evaluation calls: the model, or the compiled model.
        batches: The eval data (this process's share).
        loss_fn: The user's loss function, if any.
        autocast: A factory of the context each forward runs in.

    Returns:
        The metrics, also in ``state.eval_metrics``.
    """
    state = loop.state
    move = state.device.type != "cpu"
    loop.eval_start()
    was_training = state.model.training
    state.model.eval()
    totals = MetricTotals()
    with torch.no_grad():
        for batch in batches:
            batch = to_device(batch, state.device) if move else batch
            with autocast():
                state.outputs = forward_batch(module, batch)
                loss = check_scalar_loss(compute_loss(loss_fn, state.outputs, batch))
            targets = batch[1] if isinstance(batch, (list, tuple)) else None
            totals.add(loss, batch_num_samples(batch), accuracy_counts(state.outputs, targets))
            loop.eval_batch_end()
    state.model.train(was_training)
    totals.reduce_across_processes(state.device)
    loop.eval_end(totals.compute())
    return state.eval_metrics


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
