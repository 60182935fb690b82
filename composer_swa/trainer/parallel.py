"""The Trainer's distributed set-up: each process's share of the data, and the wrapped model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from composer_swa.distributed import DistributedInfo, check_parallelism, shard_dataloader, wrap_for_training
from composer_swa.trainer.checks import check_nonempty

__all__ = ["prepare_model", "shard_dataloaders"]


def shard_dataloaders(
    train: Iterable[Any], evaluation: Iterable[Any] | None, info: DistributedInfo, seed: int
) -> tuple[Iterable[Any], Iterable[Any] | None]:
    """The train and eval loaders with a ``DistributedSampler`` each (unchanged in one process), checked non-empty."""
    train = shard_dataloader(train, "train_dataloader", info.rank, info.world_size, seed)
    check_nonempty(train, "train_dataloader")
    if evaluation is not None:
        evaluation = shard_dataloader(evaluation, "eval_dataloader", info.rank, info.world_size, seed)
        check_nonempty(evaluation, "eval_dataloader")
    return train, evaluation


def prepare_model(
    model: torch.nn.Module,
    device: torch.device,
    info: DistributedInfo,
    optimizers: Sequence[torch.optim.Optimizer],
    parallelism: str | None,
    sync_batch_norm: bool,
) -> torch.nn.Module:
    """Checks the arguments, then wraps the model: DDP by default under torchrun, FSDP2 when asked, nothing alone."""
    check_parallelism(parallelism, sync_batch_norm, device)
    chosen = (parallelism or "ddp") if info.world_size > 1 else None
    return wrap_for_training(model, chosen, device, optimizers, sync_batch_norm)
