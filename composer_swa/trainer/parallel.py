"""The Trainer's distributed set-up: each process's share of the data, and the wrapped model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from composer_swa.compiled import split_compiled
from composer_swa.distributed.process_group import DistributedInfo
from composer_swa.distributed.sampling import shard_dataloader
from composer_swa.distributed.wrapping import check_parallelism, wrap_for_training
from composer_swa.trainer.checks import check_nonempty

__all__: list[str] = []


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
) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """Checks the arguments, then wraps the model: DDP by default under torchrun, FSDP2 when asked, nothing alone.

    Returns ``(model, train_module, eval_module)``: the unwrapped model (for the State: its own
    ``state_dict()`` keys name checkpoints, averages and exports), what the training step calls, and
    what evaluation calls. A ``torch.compile``'d model is unwrapped to its original module, and the
    compiled one stays what training (inside DDP, if any) and evaluation call.
    """
    check_parallelism(parallelism, sync_batch_norm, device)
    chosen = (parallelism or "ddp") if info.world_size > 1 else None
    original, compiled = split_compiled(model)
    if compiled is None:
        return model, wrap_for_training(model, chosen, device, optimizers, sync_batch_norm), model
    if chosen == "ddp":  # DDP around the compiled module: gradients are the same parameters' either way
        return original, wrap_for_training(compiled, chosen, device, optimizers, sync_batch_norm), compiled
    # One process, or FSDP2, which shards the original in place (the compiled module calls it).
    wrap_for_training(original, chosen, device, optimizers, sync_batch_norm)
    return original, compiled, compiled
