"""What a dataloader tells of an epoch without being iterated: batches, samples, batch size, tokens per sample.

The State resolves times through these facts; the framework adapters, which know the batches
themselves, ask only for the tokens per sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__: list[str] = []


def describe_dataloader(dataloader: Iterable[Any]) -> dict[str, int | None]:
    """What a loader tells of an epoch: batches, samples, and the size of a full batch (``None`` if unknown).

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> loader = DataLoader(TensorDataset(torch.zeros(100, 2)), batch_size=32)
        >>> describe_dataloader(loader)
        {'batches_per_epoch': 4, 'batch_size': 32, 'samples_per_epoch': 100}
    """
    try:
        batches = len(dataloader)  # type: ignore[arg-type]
    except TypeError:
        batches = None
    batch_size = getattr(dataloader, "batch_size", None)
    samples: int | None = None
    dataset = getattr(dataloader, "dataset", None)
    sampler = getattr(dataloader, "sampler", None)
    if batches is not None and batch_size is not None:
        try:
            # The sampler, not the dataset, decides what one rank sees in an epoch.
            per_epoch = len(sampler) if sampler is not None else len(dataset)  # type: ignore[arg-type]
        except TypeError:
            per_epoch = batches * batch_size
        samples = batches * batch_size if getattr(dataloader, "drop_last", False) else per_epoch
    return {"batches_per_epoch": batches, "batch_size": batch_size, "samples_per_epoch": samples}


def infer_tokens_per_sample(dataloader: Iterable[Any]) -> int | None:
    """Tokens in the loader's first sample (``input_ids``, or integer inputs), or ``None`` if not text.

    It reads ``dataset[0]`` rather than a batch: creating a loader iterator would draw from the global
    RNG and change the shuffling of the run.
    """
    try:
        sample = dataloader.dataset[0]  # type: ignore[attr-defined]
    except (AttributeError, TypeError, IndexError, KeyError, NotImplementedError):
        return None
    if isinstance(sample, dict):
        ids = sample.get("input_ids")
    else:
        ids = sample[0] if isinstance(sample, (list, tuple)) and sample else sample
    if isinstance(ids, torch.Tensor) and ids.dim() >= 1 and not ids.is_floating_point():
        return int(ids.numel())
    return None
