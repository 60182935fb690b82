"""Wrapping the model for data parallelism: DDP replicates it, FSDP2's ``fully_shard`` shards it.

The :class:`~composer_swa.State` keeps the unwrapped model, so checkpoint keys and averaged tensor
names carry no ``module.`` prefix: a DDP checkpoint from N processes loads in one, and back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.parallel import DistributedDataParallel

__all__: list[str] = []

PARALLELISMS = ("ddp", "fsdp")


def check_parallelism(parallelism: str | None, sync_batch_norm: bool, device: torch.device) -> None:
    """Validates the Trainer's ``parallelism`` and ``sync_batch_norm`` arguments."""
    if parallelism is not None and parallelism not in PARALLELISMS:
        raise ValueError(f"parallelism must be one of {PARALLELISMS} or None, got {parallelism!r}")
    if sync_batch_norm and device.type != "cuda":
        raise ValueError(
            f"sync_batch_norm=True needs CUDA (torch's SyncBatchNorm is GPU-only), but the device is {str(device)!r}; "
            "on CPUs per-process batch statistics are used, and SWA's batch-norm pass still reduces over all processes"
        )


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether FSDP2 ``fully_shard`` was applied to ``model`` (its parameters are DTensor shards)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def fsdp_units(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The submodules sharded on their own (each gathered only while it runs): the root's children
    that hold parameters, looking inside ``ModuleList``/``ModuleDict`` containers (transformer blocks)."""
    units: list[torch.nn.Module] = []
    for child in model.children():
        if isinstance(child, (torch.nn.ModuleList, torch.nn.ModuleDict)):
            units += [block for block in child.children() if next(block.parameters(), None) is not None]
        elif next(child.parameters(), None) is not None:
            units.append(child)
    return units


def shard_model(model: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer]) -> None:
    """Applies ``fully_shard`` to :func:`fsdp_units` and the root, and points ``optimizers`` at the new
    sharded parameters (``fully_shard`` replaces each ``Parameter`` with a DTensor one).

    The optimizers must not have taken a step yet: their per-parameter state would be for full tensors.
    """
    from torch.distributed.fsdp import fully_shard

    for index, optimizer in enumerate(optimizers):
        if optimizer.state:
            raise ValueError(
                f"optimizers[{index}] has already taken steps; with parallelism='fsdp' pass an optimizer "
                "that has not stepped yet (its state is rebuilt for the shards)"
            )
    before = dict(model.named_parameters())
    for unit in fsdp_units(model):
        fully_shard(unit)
    fully_shard(model)
    after = dict(model.named_parameters())
    replacement = {id(before[name]): after[name] for name in before}
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["params"] = [replacement[id(param)] for param in group["params"]]


def wrap_for_training(
    model: torch.nn.Module,
    parallelism: str | None,
    device: torch.device,
    optimizers: Sequence[torch.optim.Optimizer],
    sync_batch_norm: bool = False,
) -> torch.nn.Module:
    """The module the training step calls: ``model`` itself (one process, or FSDP2, which shards it in
    place), or a ``DistributedDataParallel`` around it.

    Batch-norm layers become ``SyncBatchNorm`` (in place, keeping their parameters) when asked.
    """
    if sync_batch_norm:
        _convert_sync_batch_norm(model)
    if parallelism == "fsdp":
        shard_model(model, optimizers)
        return model
    if parallelism == "ddp":
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model


def _convert_sync_batch_norm(model: torch.nn.Module) -> None:
    # convert_sync_batchnorm returns a new root when the root itself is a batch norm; swap children instead.
    for name, child in model.named_children():
        converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(child)
        if converted is not child:
            setattr(model, name, converted)
