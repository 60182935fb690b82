"""What a batch holds: ``(inputs, targets)`` tuples/lists, dicts or bare tensors; its samples, tokens, device and
microbatches. How a model runs on one is :mod:`composer_swa.model_calls`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["batch_num_samples", "batch_num_tokens", "split_batch", "to_device"]


def to_device(batch: Any, device: torch.device) -> Any:
    """Moves every tensor in a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def _first_tensor(batch: Any) -> torch.Tensor | None:
    if isinstance(batch, torch.Tensor):
        return batch
    values = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (list, tuple)) else ()
    for value in values:
        found = _first_tensor(value)
        if found is not None:
            return found
    return None


def batch_num_samples(batch: Any) -> int:
    """The batch's first dimension (samples), read from its first tensor."""
    if type(batch) is tuple or type(batch) is list:  # the common (inputs, targets) case, on the hot path
        first = batch[0] if batch else None
        if isinstance(first, torch.Tensor) and first.dim() > 0:
            return first.shape[0]
    tensor = _first_tensor(batch)
    if tensor is None or tensor.dim() == 0:
        raise ValueError(f"cannot count the samples of a batch of type {type(batch).__name__}: it holds no batched tensor")
    return int(tensor.shape[0])


def batch_num_tokens(batch: Any) -> int:
    """Tokens in a batch: ``input_ids`` of a dict, or integer inputs of a tuple; 0 when not text."""
    if type(batch) is tuple or type(batch) is list:
        inputs = batch[0] if batch else None
        return (
            int(inputs.numel())
            if isinstance(inputs, torch.Tensor) and inputs.dim() >= 2 and not inputs.is_floating_point()
            else 0
        )
    if isinstance(batch, Mapping):
        ids = batch.get("input_ids")
        return int(ids.numel()) if isinstance(ids, torch.Tensor) else 0
    inputs = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
    if isinstance(inputs, torch.Tensor) and inputs.dim() >= 2 and not inputs.is_floating_point():
        return int(inputs.numel())
    return 0


def split_batch(batch: Any, parts: int, size: int | None = None) -> list[Any]:
    """Splits a batch along the first dimension into up to ``parts`` near-equal microbatches or, with
    ``size``, into microbatches of ``size`` samples, the last one smaller (Composer's ``device_train_microbatch_size``).

    Example:
        >>> [len(part) for part in split_batch(torch.zeros(10), parts=1, size=4)]
        [4, 4, 2]
    """
    if parts == 1 and size is None:
        return [batch]
    if isinstance(batch, torch.Tensor):
        return list(torch.split(batch, size) if size is not None else torch.tensor_split(batch, parts))
    if isinstance(batch, Mapping):
        pieces = {
            key: split_batch(value, parts, size) if isinstance(value, torch.Tensor) else None for key, value in batch.items()
        }
        count = min(len(p) for p in pieces.values() if p is not None)
        return [{key: (p[i] if p is not None else batch[key]) for key, p in pieces.items()} for i in range(count)]
    if isinstance(batch, (list, tuple)):
        columns = [split_batch(value, parts, size) for value in batch]
        return [type(batch)(column[i] for column in columns) for i in range(len(columns[0]))]
    raise TypeError(f"cannot split a batch of type {type(batch).__name__} into microbatches")
