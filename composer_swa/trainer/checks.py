"""Up-front checks of the Trainer's arguments: each error names the argument, its value and the fix."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__: list[str] = []


def check_model(model: Any) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if next(model.parameters(), None) is None:
        raise ValueError(f"model {type(model).__name__} has no parameters; there is nothing to train or average")
    return model


def check_optimizers(optimizers: Sequence[torch.optim.Optimizer], model: torch.nn.Module) -> None:
    """Every optimized tensor must be one of the model's parameters (a common slip after rebuilding a model)."""
    model_params = {id(p) for p in model.parameters()}
    for index, optimizer in enumerate(optimizers):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizers[{index}] must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        foreign = sum(1 for group in optimizer.param_groups for p in group["params"] if id(p) not in model_params)
        if foreign:
            raise ValueError(
                f"optimizers[{index}] ({type(optimizer).__name__}) holds {foreign} tensor(s) that are not parameters of "
                f"the model; build the optimizer from this model's parameters (model.parameters())"
            )


def check_nonempty(dataloader: Iterable[Any], argument: str) -> None:
    try:
        length = len(dataloader)  # type: ignore[arg-type]
    except TypeError:
        return
    if length == 0:
        raise ValueError(
            f"{argument} is empty (len == 0); it must yield at least one batch "
            "(is batch_size larger than the dataset, with drop_last=True?)"
        )


def resolve_device(device: torch.device | str | None) -> torch.device:
    """Composer's device names (``"cpu"``, ``"gpu"``, ``"mps"``) or torch's (``"cuda"``, ``"cuda:N"``, a ``torch.device``).

    ``None`` picks CUDA when it is available, else the CPU (as Composer does).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    allowed = "'cpu', 'gpu', 'cuda', 'cuda:N', 'mps' or a torch.device"
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be {allowed}, got {device!r} (a {type(device).__name__})")
    try:
        resolved = torch.device("cuda" if device == "gpu" else device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be {allowed}, got {device!r}") from None
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be {allowed}, got {device!r}; composer_swa trains on CPUs, CUDA GPUs and Apple's MPS")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available on this machine; use device='cpu'")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was asked for, but MPS is not available on this machine; use device='cpu'")
    return resolved


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch on every device."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
