"""Joining torch.distributed from the environment torchrun sets, and the few collectives the loop needs.

composer_swa never launches or manages processes itself: ``torchrun`` (or ``swa-train --nproc N``,
which calls torchrun's own launcher) starts one process per device and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. A process that sees them joins the
process group: NCCL for CUDA tensors, gloo for CPU tensors (and for the small CPU objects the loop
gathers, such as RNG states).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistributedInfo", "distributed_info", "join_process_group"]

_LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process stands: its global rank, the number of processes, its rank on this node.

    Example:
        >>> distributed_info()
        DistributedInfo(rank=0, world_size=1, local_rank=0)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_rank_zero(self) -> bool:
        return self.rank == 0


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def distributed_info() -> DistributedInfo:
    """This process's rank and world size (``rank=0, world_size=1`` without a process group)."""
    if not is_distributed():
        return DistributedInfo()
    return DistributedInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def join_process_group(device: torch.device | None = None) -> DistributedInfo:
    """Joins the process group torchrun's environment describes, once; a plain launch stays single-process.

    Args:
        device: The training device. CUDA runs use NCCL (with gloo beside it for CPU objects) and
            must be placed on ``cuda:LOCAL_RANK``; CPU runs use gloo.

    Raises:
        RuntimeError: When only some of torchrun's variables are set (a hand-made launch gone wrong).
    """
    if dist.is_available() and dist.is_initialized():
        return distributed_info()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedInfo()
    missing = [name for name in _LAUNCH_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world_size} is set but {missing} are not; launch with torchrun "
            "(or swa-train --nproc N), which sets all of them"
        )
    backend = "cpu:gloo,cuda:nccl" if device is not None and device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    # A group left to interpreter shutdown can abort a process whose peers exited first
    # ("terminate called without an active exception"); the group we opened, we close.
    atexit.register(_leave_process_group)
    return distributed_info()


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sums ``tensor`` over every process, in place (a no-op in a single process); returns it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is set on at least one process: every process gets the same answer."""
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` in a single process).

    Only for small in-memory objects the processes hand to each other, never for data read from disk.
    """
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
