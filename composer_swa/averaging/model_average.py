"""The averaged weights of one model: what SWA and EMA keep beside the live weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from composer_swa.averaging.kernel import FlatAverage
from composer_swa.distributed.sharded import full_tensor, is_dtensor, local_part, local_tensor

__all__ = ["ModelAverage", "compute_ema", "load_tracked_weights", "named_state_tensors"]


def named_state_tensors(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
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


@torch.no_grad()
def compute_ema(model: torch.nn.Module, ema_model: torch.nn.Module, smoothing: float = 0.99) -> None:
    """``ema ← smoothing · ema + (1 − smoothing) · w`` in place, for every parameter and buffer of ``model``
    that ``ema_model`` has under the same name (Composer's ``compute_ema``, for a loop of your own).

    Integer buffers (``num_batches_tracked``) take the live value: an average of counters means nothing.
    The half-life in updates of a given ``smoothing`` is ``-log(2) / log(smoothing)``.

    Args:
        model: The live model.
        ema_model: The model holding the moving average (a copy of ``model``, typically).
        smoothing: How much of the old average each update keeps, in [0, 1].

    Example:
        >>> model, ema_model = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        >>> _ = torch.nn.init.ones_(model.weight), torch.nn.init.zeros_(ema_model.weight)
        >>> compute_ema(model, ema_model, smoothing=0.75)
        >>> ema_model.weight
        Parameter containing:
        tensor([[0.2500, 0.2500]], requires_grad=True)
    """
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be a number in [0, 1], got {smoothing!r}")
    targets = ema_model.state_dict(keep_vars=True)
    for name, live in named_state_tensors(model):
        target = targets.get(name)
        if target is None:
            continue
        if target.is_floating_point():
            target.lerp_(live.detach().to(device=target.device, dtype=target.dtype), 1.0 - smoothing)
        else:
            target.copy_(live.detach())


class ModelAverage:
    """An fp32 average of a model's floating-point parameters and buffers.

    Integer and bool buffers (``num_batches_tracked``) are not averaged: each update copies their
    current value, and :meth:`copy_to_model` writes that copy back. With ``use_buffers=False`` every
    buffer is treated so: the average holds the live buffers as of the last update (torch's
    ``AveragedModel(use_buffers=False)``, timm's ``exclude_buffers=True``).

    Under FSDP2 each process averages only its own shard of every sharded parameter:
    :meth:`state_dict` holds those local slices and :meth:`full_state_dict` gathers whole tensors.

    Args:
        model: The live model; the average reads its tensors by reference.
        device: Where the average lives. Defaults to the model's devices; ``"cpu"`` offloads it.
        use_buffers: Average floating-point buffers (e.g. batch-norm running statistics) too; ``False`` copies them.

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

    def __init__(self, model: torch.nn.Module, device: torch.device | str | None = None, use_buffers: bool = True) -> None:
        shared = named_state_tensors(model)
        #: The DTensor of each sharded tensor, for its layout (FSDP2 only).
        self._sharded_like = {name: tensor for name, tensor in shared if is_dtensor(tensor)}
        named = [(name, local_tensor(tensor)) for name, tensor in shared]
        parameters = {id(local_tensor(parameter)) for parameter in model.parameters()}
        averaged = [tensor.is_floating_point() and (use_buffers or id(tensor) in parameters) for _, tensor in named]
        floating = [pair for pair, keep in zip(named, averaged) if keep]
        self._float_names = [name for name, _ in floating]
        self._live_sources = [tensor for _, tensor in floating]
        self._average = FlatAverage(self._live_sources, device=device)
        self._float_views = self._average.views()
        self._copied_names = [name for (name, _), keep in zip(named, averaged) if not keep]
        self._copied_sources = [tensor for (_, tensor), keep in zip(named, averaged) if not keep]
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
