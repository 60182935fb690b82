"""FSDP2 shards: each process keeps and averages only its own slice of every sharded parameter.

Under ``fully_shard`` a parameter is a ``DTensor`` whose local tensor is this process's slice. The
averages hold fp32 copies of those slices, so each process stores ``1/N`` of the average and an
update touches no other process. Gathering the full tensors (for export or a checkpoint) is a
collective: every process must call it.
"""

from __future__ import annotations

from typing import Any

import torch

__all__: list[str] = []


def is_dtensor(tensor: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This process's slice of a DTensor (sharing its storage), or ``tensor`` itself."""
    return tensor.to_local() if is_dtensor(tensor) else tensor  # type: ignore[attr-defined]


def full_tensor(local: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The whole tensor, gathered from every process's ``local`` slice laid out as the DTensor ``like``
    (``local`` itself when ``like`` is an ordinary tensor)."""
    from torch.distributed.tensor import DTensor

    if not isinstance(like, DTensor):
        return local
    distributed = DTensor.from_local(local, like.device_mesh, like.placements, shape=like.shape, stride=like.stride())
    return distributed.full_tensor()


def local_part(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """This process's slice of ``full``, laid out as the DTensor ``like`` (no communication)."""
    from torch.distributed.tensor import distribute_tensor

    assert is_dtensor(like)
    return distribute_tensor(full.to(like.device), like.device_mesh, like.placements, src_data_rank=None).to_local()  # type: ignore[attr-defined]


def full_model_state_dict(model: torch.nn.Module) -> dict[str, Any]:
    """``model.state_dict()`` with sharded tensors gathered into whole ones (a collective under FSDP2)."""
    return {name: full_tensor(local_tensor(value), value) for name, value in model.state_dict().items()}


def _full_options() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True)


def model_state_dict(model: torch.nn.Module) -> dict[str, Any]:
    """The model's state with whole tensors: plain ``state_dict()``, or gathered under FSDP2 (a collective)."""
    from composer_swa.distributed.wrapping import is_sharded

    if not is_sharded(model):
        return model.state_dict()
    return full_model_state_dict(model)


def load_model_state_dict(model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Loads whole tensors into the model; under FSDP2 each process keeps its slices."""
    from composer_swa.distributed.wrapping import is_sharded

    if not is_sharded(model):
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=_full_options())


def optimizer_state_dict(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state with whole tensors (gathered under FSDP2, keyed by parameter name)."""
    from composer_swa.distributed.wrapping import is_sharded

    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_full_options())


def load_optimizer_state_dict(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    from composer_swa.distributed.wrapping import is_sharded

    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=_full_options())
