"""How the Trainer calls the model on a batch and gets a loss: tuples, lists and dicts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["compute_loss", "default_loss", "forward_batch"]

_SEQUENCES = (tuple, list)  # exact types: an isinstance check against Mapping costs more per step


def forward_batch(model: torch.nn.Module, batch: Any) -> Any:
    """``model(inputs)`` for an ``(inputs, targets)`` tuple or list, ``model(**batch)`` for a dict."""
    if type(batch) in _SEQUENCES and len(batch) >= 2:
        return model(batch[0])
    if isinstance(batch, Mapping):
        return model(**batch)
    raise TypeError(
        f"a batch must be an (inputs, targets) tuple/list or a dict of model inputs, got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else "")
    )


def compute_loss(loss_fn: Callable[[Any, Any], torch.Tensor] | None, outputs: Any, batch: Any) -> torch.Tensor:
    """``loss_fn(outputs, targets)`` for tuple batches; for dicts ``loss_fn(outputs, batch)`` or ``outputs.loss``."""
    if type(batch) in _SEQUENCES:
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
    raise TypeError(f"cannot compute a loss for a batch of type {type(batch).__name__}")


def default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the last dimension: ``(N, C)`` logits, or ``(N, T, C)`` for sequences."""
    if outputs.dim() > 2 and outputs.dim() == targets.dim() + 1:
        return F.cross_entropy(outputs.flatten(0, -2), targets.flatten())
    return F.cross_entropy(outputs, targets)
