"""Optimizers with weight decay decoupled from the learning rate, at Composer's names.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (https://arxiv.org/abs/1711.05101).
As in Composer, each step first shrinks every parameter that has a gradient by
``1 - (lr / initial_lr) * weight_decay`` and then takes torch's own SGD or Adam step without weight
decay: the decay follows the schedule's shape but not the size of the learning rate, so
``weight_decay=2e-3`` means 0.2% per step at the peak LR whatever that LR is.

Example:
    >>> import torch
    >>> weight = torch.nn.Parameter(torch.ones(1))
    >>> optimizer = DecoupledSGDW([weight], lr=0.5, weight_decay=0.1)
    >>> weight.grad = torch.zeros(1)
    >>> optimizer.step()
    >>> round(weight.item(), 6)  # 1 * (1 - 0.1): the decay does not scale with lr=0.5
    0.9
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["DecoupledAdamW", "DecoupledSGDW"]


def _decay(optimizer: torch.optim.Optimizer) -> None:
    """Shrinks each parameter with a gradient by ``(lr / initial_lr) * weight_decay`` of itself."""
    with torch.no_grad():
        for group in optimizer.param_groups:
            weight_decay = group["lr_free_weight_decay"]
            if weight_decay == 0:
                continue
            factor = group["lr"] / group["initial_lr"] if group["initial_lr"] else 1.0
            for parameter in group["params"]:
                if parameter.grad is not None:
                    parameter.mul_(1 - factor * weight_decay)


def _check(weight_decay: float) -> float:
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    return weight_decay


def _prepare(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    # Not torch's "decoupled_weight_decay" key: Adam has its own flag by that name.
    for group in optimizer.param_groups:
        # torch's own step must not decay again; an LR scheduler sets initial_lr too (to the same value).
        group.setdefault("lr_free_weight_decay", group.pop("weight_decay", weight_decay))
        group["weight_decay"] = 0.0
        group.setdefault("initial_lr", group["lr"])


class DecoupledSGDW(torch.optim.SGD):
    """``torch.optim.SGD`` with decoupled weight decay (see the module docstring); arguments as SGD's.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> optimizer = DecoupledSGDW(model.parameters(), lr=0.05, momentum=0.9, weight_decay=2.0e-3)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(
            params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=_check(weight_decay), nesterov=nesterov
        )
        _prepare(self, weight_decay)

    def step(self, closure: Callable[[], float] | None = None) -> Any:
        _decay(self)
        return super().step(closure)


class DecoupledAdamW(torch.optim.Adam):
    """``torch.optim.Adam`` with decoupled weight decay (see the module docstring); Composer's defaults.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> optimizer = DecoupledAdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        weight_decay: float = 1e-5,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=_check(weight_decay), amsgrad=amsgrad)
        _prepare(self, weight_decay)

    def step(self, closure: Callable[[], float] | None = None) -> Any:
        _decay(self)
        return super().step(closure)
