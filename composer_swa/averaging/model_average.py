"""The averaged weights of one model: what SWA and EMA keep beside the live weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from composer_swa.averaging.kernel import FlatAverage
from composer_swa.distributed.sharded import full_tensor, is_dtensor, local_part, local_tensor

__all__ = ["ModelAverage", "load_tracked_weights", "named_state_tensors"]


def named_state_tensors(model: torch.nn.Module, include_buffers: bool = True) -> list[tuple[str, torch.Tensor]]:
    """Parameters then buffers, each shared tensor once, named exactly as in ``model.state_dict()``.

    Nothing is stripped: ``model`` is the unwrapped model (:class:`~composer_swa.State` never holds a
    DDP or ``torch.compile`` wrapper), so a name such as ``module.weight`` is the model's own child
    ``module`` and must not collide with a top-level ``weight``.

    Example:
        >>> class Net(torch.nn.Module):
        ...     def __init__(self) -> None:
        ...         super().__init__()
        ...         self.module = torch.nn.Linear(2, 2, bias=False)
        ...         self.weight = torch.nn.Parameter(torch.zeros(2))
        >>> [name for name, _ in named_state_tensors(Net())]
        ['weight', 'module.weight']
    """
    seen: set[int] = set()
    named: list[tuple[str, torch.Tensor]] = []
    pairs: list[tuple[str, torch.Tensor]] = list(model.named_parameters())
    if include_buffers:
        pairs += [(name, buffer) for name, buffer in model.named_buffers() if buffer is not None]
    for name, tensor in pairs:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            named.append((name, tensor))
    return named


def load_tracked_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict(weights)`` for weights named as :func:`named_state_tensors` names them.

    A tensor the model shares under two names (a language model's output head tied to its embedding)
    is stored once in an average or a snapshot; its other names take the stored one's value, so the
    load stays strict about every tensor that is really missing.

    Example:
        >>> tied = torch.nn.Sequential(torch.nn.Embedding(3, 2), torch.nn.Linear(2, 3, bias=False))
        >>> tied[1].weight = tied[0].weight
        >>> weights = {name: torch.ones_like(tensor) for name, tensor in named_state_tensors(tied)}
        >>> sorted(weights), sorted(tied.state_dict())
        (['0.weight'], ['0.weight', '1.weight'])
        >>> load_tracked_weights(tied, weights)
        >>> bool(tied[1].weight.eq(1).all())
        True
    """
    stored_as = {id(tensor): name for name, tensor in reversed(named_state_tensors(model))}
    complete = dict(weights)
    for name, tensor in model.state_dict(keep_vars=True).items():
        stored = stored_as.get(id(tensor))
        if name not in complete and stored is not None and stored in weights:
            complete[name] = weights[stored]
    model.load_state_dict(complete)


class ModelAverage:
    """An fp32 average of a model's floating-point parameters and buffers.

    Integer and bool buffers (``num_batches_tracked``) are not averaged: each update copies their
    current value, and :meth:`copy_to_model` writes that copy back.

    Under FSDP2 each process averages only its own shard of every sharded parameter:
    :meth:`state_dict` holds those local slices and :meth:`full_state_dict` gathers whole tensors.

    Args:
        model: The live model; the average reads its tensors by reference.
        device: Where the average lives. Defaults to the model's devices; ``"cpu"`` offloads it.
        include_buffers: Average floating-point buffers (e.g. batch-norm running statistics) too.

    Example:
        >>> model = torch.nn.BatchNorm1d(2)
        >>> average = ModelAverage(model)
        >>> average.copy_from_model()
        >>> with torch.no_grad():
        ...     model.weight.fill_(3.0)  # doctest: +ELLIPSIS
        Parameter...
        >>> average.interpolate(0.5)
        >>> average.state_dict()["weight"]
        tensor([2., 2.])
    """

    def __init__(self, model: torch.nn.Module, device: torch.device | str | None = None, include_buffers: bool = True) -> None:
        shared = named_state_tensors(model, include_buffers)
        #: The DTensor of each sharded tensor, for its layout (FSDP2 only).
        self._sharded_like = {name: tensor for name, tensor in shared if is_dtensor(tensor)}
        named = [(name, local_tensor(tensor)) for name, tensor in shared]
        floating = [(name, tensor) for name, tensor in named if tensor.is_floating_point()]
        self._float_names = [name for name, _ in floating]
        self._live_sources = [tensor for _, tensor in floating]
        self._average = FlatAverage(self._live_sources, device=device)
        self._float_views = self._average.views()
        self._copied_names = [name for name, tensor in named if not tensor.is_floating_point()]
        self._copied_sources = [tensor for _, tensor in named if not tensor.is_floating_point()]
        self._copies = [tensor.detach().clone() for tensor in self._copied_sources]

    @property
    def numel(self) -> int:
        """Elements in the fp32 average (its memory is ``4 * numel`` bytes)."""
        return self._average.numel

    @torch.no_grad()
    def _copy_integer_tensors(self) -> None:
        if self._copies:
            torch._foreach_copy_(self._copies, self._copied_sources)

    def copy_from_model(self) -> None:
        """Sets the average to the model's current weights."""
        self._average.copy_from_sources()
        self._copy_integer_tensors()

    def interpolate(self, weight: float) -> None:
        """Moves the average toward the model's weights: ``avg += weight * (w - avg)``."""
        self._average.interpolate(weight)
        self._copy_integer_tensors()

    @torch.no_grad()
    def copy_from_average(self, other: ModelAverage) -> None:
        """Sets this average to ``other``, an average of the same model (integer buffers included)."""
        self._average.copy_from_average(other._average)
        if self._copies:
            torch._foreach_copy_(self._copies, other._copies)

    def interpolate_toward_average(self, other: ModelAverage, weight: float) -> None:
        """``avg += weight * (other - avg)``; integer buffers take ``other``'s (the later) values."""
        self._average.interpolate_toward_average(other._average, weight)
        if self._copies:
            with torch.no_grad():
                torch._foreach_copy_(self._copies, other._copies)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Replaces the model's weights with the average (cast to the model's dtypes)."""
        self._average.copy_to_sources()
        if self._copies:
            torch._foreach_copy_(self._copied_sources, self._copies)

    @contextmanager
    def swapped_into_model(self) -> Iterator[None]:
        """Holds the average in the model inside the block, then restores the live weights exactly."""
        with torch.no_grad():
            backup = [tensor.detach().clone() for tensor in self._live_sources + self._copied_sources]
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self._live_sources + self._copied_sources, backup)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The average by tensor name: fp32 views for floating tensors, copies for integer ones.

        Under FSDP2 sharded tensors are this process's slices; see :meth:`full_state_dict`.
        """
        return dict(zip(self._float_names + self._copied_names, self._float_views + self._copies))

    @property
    def is_sharded(self) -> bool:
        return bool(self._sharded_like)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """:meth:`state_dict` with every shard gathered into its whole tensor (a collective under FSDP2:
        every process must call it); the same as :meth:`state_dict` otherwise."""
        local = self.state_dict()
        if not self._sharded_like:
            return local
        return {
            name: full_tensor(value, self._sharded_like[name]) if name in self._sharded_like else value
            for name, value in local.items()
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restores :meth:`state_dict` or :meth:`full_state_dict` (each process takes its slice of whole
        tensors); raises ``KeyError``/``ValueError`` naming what does not match."""
        expected = self.state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or unexpected:
            raise KeyError(f"averaged weights do not match the model: missing {missing}, unexpected {unexpected}")
        for name, target in expected.items():
            like = self._sharded_like.get(name)
            if like is not None and tuple(state[name].shape) == tuple(like.shape) != tuple(target.shape):
                state = {**state, name: local_part(state[name], like)}
            if tuple(state[name].shape) != tuple(target.shape):
                raise ValueError(
                    f"averaged weight {name!r} has shape {tuple(state[name].shape)}, the model has {tuple(target.shape)}"
                )
            target.copy_(state[name])
