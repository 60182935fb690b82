"""Evaluation: one pass over the eval data between EVAL_START and EVAL_END, into torchmetrics metrics.

The metrics are the model's (:class:`~composer_swa.model_calls.ModelCalls`): a ComposerModel's
``get_metrics(is_train=False)``, updated by its ``update_metric``; a plain module's sample-weighted
``loss`` and, for class logits, ``accuracy``. At EVAL_END they are in ``state.eval_metrics[label]``,
Composer's shape; their values (summed over processes by torchmetrics) are returned as ``"{label}/{name}"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

from composer_swa.batches import to_device

if TYPE_CHECKING:
    from composer_swa.events.loop import Loop
    from composer_swa.model_calls import ModelCalls

__all__: list[str] = []


def evaluate(
    loop: Loop,
    module: torch.nn.Module,
    batches: Iterable[Any],
    calls: ModelCalls,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    label: str = "eval",
) -> dict[str, float]:
    """Evaluates what the model holds now (an algorithm may swap its average in at EVAL_START) on ``batches``.

    Args:
        loop: The run's loop; ``loop.state.model`` is put in eval mode for the pass and back after it.
        module: What a plain module's evaluation calls: the model, or the compiled model.
        batches: The eval data (this process's share).
        calls: How the model is called and which metrics it has.
        autocast: A factory of the context each forward and metric update runs in.
        label: The eval data's name: the key in ``state.eval_metrics`` and the logged names' prefix.

    Returns:
        ``{"{label}/{metric name}": value}`` for every metric with one number as its value.
    """
    from composer_swa.metrics import metric_values  # torchmetrics loads only when a run evaluates

    state = loop.state
    move = state.device.type != "cpu"
    loop.eval_start()
    was_training = state.model.training
    state.model.eval()
    metrics = calls.eval_metrics(state.device)  # fresh each time: an earlier evaluation's metrics stay as they were
    with torch.no_grad():
        for batch in batches:
            batch = to_device(batch, state.device) if move else batch
            with autocast():
                state.outputs = calls.eval_forward(module, batch)
                calls.update_metrics(metrics, batch, state.outputs)
            loop.eval_batch_end()
    state.model.train(was_training)
    evaluated = {label: metrics}
    values = metric_values(evaluated)
    loop.eval_end(evaluated)
    return values
