"""Finiteness checks: nothing NaN or infinite is written to a checkpoint or an export, or averaged in."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch

from composer_swa.distributed.process_group import any_rank
from composer_swa.distributed.sharded import local_tensor

__all__ = ["NonFiniteError", "check_finite", "first_non_finite", "named_tensors"]


class NonFiniteError(FloatingPointError):
    """A training loss or a weight is NaN or infinite; the run stops before it is saved, averaged or exported.

    Example:
        >>> issubclass(NonFiniteError, ArithmeticError)
        True
    """


def named_tensors(tree: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in nested dicts and lists (a state dict, a checkpoint payload), with its dotted path."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from named_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            yield from named_tensors(value, f"{prefix}[{index}]")


def first_non_finite(named: Iterable[tuple[str, torch.Tensor]]) -> tuple[str, torch.Tensor] | None:
    """The first floating tensor holding a NaN or an infinity, with its name; ``None`` when all are finite.

    One multi-tensor L2 norm per device and one host sync per device screen them: a NaN or an
    infinity anywhere makes a norm non-finite. (The max-abs norm would say the same without
    overflowing, but on a CPU it costs 20-50x as much.) Only when a norm is not finite, which a huge
    but finite tensor can also cause, is each tensor checked on its own.

    Example:
        >>> first_non_finite([("a", torch.ones(2)), ("b", torch.tensor([1.0, float("nan")]))])[0]
        'b'
        >>> first_non_finite([("huge", torch.full((4,), 3e38))]) is None  # its L2 norm overflows; it is finite
        True
    """
    floating = [(name, local_tensor(tensor)) for name, tensor in named if tensor.is_floating_point()]
    floating = [(name, tensor.detach()) for name, tensor in floating if tensor.numel()]
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for _, tensor in floating:
        by_device.setdefault(tensor.device, []).append(tensor)
    for tensors in by_device.values():
        norms = torch._foreach_norm(tensors, ord=2)
        if not bool(torch.stack([value.float() for value in norms]).isfinite().all()):
            break
    else:
        return None
    return next(((name, tensor) for name, tensor in floating if not bool(tensor.isfinite().all())), None)


def describe(name: str, tensor: torch.Tensor) -> str:
    """``'fc.weight' (shape (2, 3)) holds 2 NaN and 1 infinite value(s) of 6``."""
    nans = int(tensor.isnan().sum())
    infinite = int(tensor.isinf().sum())
    return f"{name!r} (shape {tuple(tensor.shape)}) holds {nans} NaN and {infinite} infinite value(s) of {tensor.numel()}"


def check_finite(
    named: Iterable[tuple[str, torch.Tensor]],
    action: str,
    device: torch.device | None = None,
    before: Callable[[], None] = lambda: None,
) -> None:
    """Raises :class:`NonFiniteError` naming the first non-finite floating tensor, refusing ``action``.

    With ``device``, the processes agree (one collective), so every process raises when one found a
    non-finite tensor of its own (FSDP2 shards). ``before`` runs first on that path, to raise a more
    telling error instead (the NaN loss that caused it).

    Example:
        >>> check_finite([("w", torch.tensor([float("inf")]))], "write the checkpoint")
        Traceback (most recent call last):
        ...
        composer_swa.checkpoint.finite.NonFiniteError: refusing to write the checkpoint: 'w' (shape (1,)) holds 0 NaN and 1 ...
    """
    found = first_non_finite(named)
    if not (any_rank(found is not None, device) if device is not None else found is not None):
        return
    before()
    detail = describe(*found) if found is not None else "a tensor on another process is not finite"
    raise NonFiniteError(
        f"refusing to {action}: {detail}; training diverged (lower the learning rate, clip gradients, or check "
        "the data for NaN); the last finite checkpoint is kept"
    )
