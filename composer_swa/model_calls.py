"""How a model runs on a batch, wherever it runs: training, evaluation, statistics passes.

One rule for the call: ``model(inputs)`` for an ``(inputs, targets, ...)`` tuple or list,
``model(**batch)`` for a dict, ``model(batch)`` for a bare tensor. The loss: ``loss_fn(outputs,
targets)`` for a tuple or list (cross-entropy by default), ``loss_fn(outputs, batch)`` or the
model's own ``outputs.loss`` for a dict. A statistics pass (SWA's batch-norm refresh) runs the same
call the way training does: on the training device, in the same microbatches, at the same precision.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from composer_swa.batches import split_batch, to_device

__all__ = ["compute_loss", "default_loss", "forward_batch", "statistics_forward"]

_SEQUENCES = (tuple, list)  # checked before Mapping: an isinstance check against an ABC costs more per step


def forward_batch(model: Callable[..., Any], batch: Any) -> Any:
    """Calls ``model`` on ``batch`` by the rule above.

    Example:
        >>> double = lambda x: 2 * x
        >>> forward_batch(double, (torch.ones(2), torch.zeros(2))), forward_batch(double, torch.ones(1))
        (tensor([2., 2.]), tensor([2.]))
    """
    if isinstance(batch, _SEQUENCES) and batch:
        return model(batch[0])
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, torch.Tensor):
        return model(batch)
    raise TypeError(
        f"a batch must be an (inputs, targets) tuple/list, a dict of model inputs or a tensor, got {type(batch).__name__}"
        + (" of length 0" if isinstance(batch, _SEQUENCES) else "")
    )


def compute_loss(loss_fn: Callable[[Any, Any], torch.Tensor] | None, outputs: Any, batch: Any) -> torch.Tensor:
    """``loss_fn(outputs, targets)`` for tuple batches; for dicts ``loss_fn(outputs, batch)`` or ``outputs.loss``."""
    if isinstance(batch, _SEQUENCES):
        if len(batch) < 2:
            raise TypeError(f"a loss needs an (inputs, targets) batch, got a {type(batch).__name__} of length {len(batch)}")
        return (loss_fn or default_loss)(outputs, batch[1])
    if isinstance(batch, Mapping):
        if loss_fn is not None:
            return loss_fn(outputs, batch)
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else getattr(outputs, "loss", None)
        if loss is None:
            raise ValueError(
                "dict batches need outputs with a 'loss' (outputs.loss or outputs['loss']), or a loss_fn(outputs, batch)"
            )
        return loss
    raise TypeError(f"cannot compute a loss for a batch of type {type(batch).__name__}; pass (inputs, targets) or a dict")


def default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the last dimension: ``(N, C)`` logits, or ``(N, T, C)`` for sequences."""
    if outputs.dim() > 2 and outputs.dim() == targets.dim() + 1:
        return F.cross_entropy(outputs.flatten(0, -2), targets.flatten())
    return F.cross_entropy(outputs, targets)


def statistics_forward(
    model: torch.nn.Module,
    device: torch.device | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    microbatches: int = 1,
    microbatch_size: int | None = None,
) -> Callable[[Any], Any]:
    """``forward(batch)`` for a statistics pass: the batch on ``device``, split and cast as training does.

    Args:
        model: The model to run (unwrapped: a statistics pass runs no collective).
        device: Where the batch goes; default: where the model's first tensor lives.
        autocast: A factory of the context each forward runs in (training's precision).
        microbatches: Parts the batch is split into (training's ``grad_accum``).
        microbatch_size: Or samples per part (training's ``device_train_microbatch_size``).

    Returns:
        A function that runs ``model`` on one batch and returns the last microbatch's outputs.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> forward = statistics_forward(model, microbatches=2)
        >>> forward((torch.ones(4, 3), torch.zeros(4))).shape  # the second half of the batch
        torch.Size([2, 1])
    """
    if device is None:
        device = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device

    def forward(batch: Any) -> Any:
        outputs = None
        for microbatch in split_batch(to_device(batch, device), microbatches, microbatch_size):
            with autocast():
                outputs = forward_batch(model, microbatch)
        return outputs

    return forward
