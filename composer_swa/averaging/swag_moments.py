"""SWAG's statistics beside SWA's mean: the running second moment and the last K deviations of the parameters.

SWA-Gaussian (Maddox et al. 2019) fits a Gaussian to the weights SWA visits. With ``θ̄_n`` the mean of
the first ``n`` snapshots (SWA's average, a :class:`~composer_swa.averaging.ModelAverage`), snapshot
``n`` adds:

- to the second moment ``s_n = s_{n-1} + (θ_n² - s_{n-1}) / n``: one squared lerp through the
  averaging kernel (:meth:`FlatAverage.interpolate_squares <composer_swa.averaging.FlatAverage.interpolate_squares>`);
- the deviation ``θ_n - θ̄_n`` (from the mean *including* ``θ_n``, as the reference code does) as a
  column of ``D̂``, a ring buffer of ``max_rank`` columns: the oldest is overwritten once it is full.

Only floating parameters get moments; buffers (batch-norm statistics) are recomputed for each sample
instead. Memory: with ``P`` parameter elements, ``4·P·(1 + K)`` bytes here, on top of SWA's fp32
mean: ``2 + K`` fp32 copies of the parameters in all. Under FSDP2 each process keeps its own shard
of every sharded parameter's moments and deviations, as of the mean.
"""

from __future__ import annotations

import torch

from composer_swa.averaging.kernel import FlatAverage, flat_views
from composer_swa.averaging.model_average import ModelAverage, named_state_tensors
from composer_swa.distributed.sharded import full_tensor, is_dtensor, local_part, local_tensor

__all__ = ["SWAGMoments", "diagonal_variance"]

#: The smallest variance a sample uses (the reference code's ``var_clamp``): rounding can make ``s - θ̄²`` negative.
VARIANCE_FLOOR = 1e-30


@torch.no_grad()
def diagonal_variance(second_moment: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """``max(E[θ²] − θ̄², VARIANCE_FLOOR)``, a new tensor.

    Example:
        >>> diagonal_variance(torch.tensor([5.0, 1.0]), torch.tensor([2.0, 1.0]))
        tensor([1.0000e+00, 1.0000e-30])
    """
    return (second_moment - mean.square()).clamp_min_(VARIANCE_FLOOR)


class SWAGMoments:
    """The second moment and the deviation ring buffer of a model's floating parameters.

    Args:
        model: The live model; its parameters are read by reference.
        mean: SWA's average of the same model, updated *before* each :meth:`update`.
        max_rank: ``K``, the number of deviation columns kept.
        device: Where the moments live (``"cpu"`` offloads them); default: the mean's device.

    Example:
        >>> model = torch.nn.Linear(1, 1, bias=False)
        >>> mean = ModelAverage(model)
        >>> moments = SWAGMoments(model, mean, max_rank=2)
        >>> for n, value in enumerate([1.0, 3.0, 5.0], start=1):
        ...     _ = model.weight.data.fill_(value)
        ...     mean.interpolate(1.0 / n)
        ...     moments.update(1.0 / n)
        >>> moments.variance()["weight"]  # E[θ²] - E[θ]² of 1, 3, 5
        tensor([[2.6667]])
        >>> moments.deviations()["weight"].flatten()  # 3 - mean(1, 3) and 5 - mean(1, 3, 5), oldest first
        tensor([1., 2.])
    """

    def __init__(
        self, model: torch.nn.Module, mean: ModelAverage, max_rank: int, device: torch.device | str | None = None
    ) -> None:
        if isinstance(max_rank, bool) or not isinstance(max_rank, int) or max_rank < 1:
            raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
        parameters = {id(parameter) for parameter in model.parameters()}
        named = [
            (name, tensor)
            for name, tensor in named_state_tensors(model)
            if id(tensor) in parameters and tensor.is_floating_point()
        ]
        self.names = [name for name, _ in named]
        #: The DTensor of each sharded parameter, for its layout (FSDP2 only).
        self.sharded_like = {name: tensor for name, tensor in named if is_dtensor(tensor)}
        self._sources = [local_tensor(tensor) for _, tensor in named]
        mean_views = mean.state_dict()
        self._mean = [mean_views[name] for name in self.names]
        target = torch.device(device) if device is not None else (self._mean[0].device if self._mean else torch.device("cpu"))
        self._second = FlatAverage(self._sources, device=target)
        self._second_views = self._second.views()
        numel = sum(source.numel() for source in self._sources)
        self._ring = torch.zeros(max_rank, numel, dtype=torch.float32, device=target)
        self._columns = [flat_views(self._ring[k], self._sources) for k in range(max_rank)]
        self.max_rank = max_rank
        #: Columns written so far (at most ``max_rank``) and where the next one goes.
        self.filled = 0
        self.next_column = 0

    @property
    def numel(self) -> int:
        """Parameter elements with moments (the memory here is ``4 · numel · (1 + max_rank)`` bytes)."""
        return self._second.numel

    @torch.no_grad()
    def update(self, weight: float) -> None:
        """Takes the live parameters in: the second moment moves ``weight`` toward their squares (``1/n`` for
        snapshot ``n``), and their deviation from the (already updated) mean becomes the newest column."""
        self._second.interpolate_squares(weight)
        column = self._columns[self.next_column]
        torch._foreach_copy_(column, self._sources)
        torch._foreach_sub_(column, self._mean)
        self.next_column = (self.next_column + 1) % self.max_rank
        self.filled = min(self.filled + 1, self.max_rank)

    def _chronological(self) -> list[int]:
        start = self.next_column if self.filled == self.max_rank else 0
        return [(start + k) % self.max_rank for k in range(self.filled)]

    def variance(self) -> dict[str, torch.Tensor]:
        """``Σ_diag`` by parameter name (this process's shards): see :func:`diagonal_variance`."""
        return {name: diagonal_variance(second, mean) for name, second, mean in zip(self.names, self._second_views, self._mean)}

    @torch.no_grad()
    def deviations(self) -> dict[str, torch.Tensor]:
        """``D̂`` by parameter name: shape ``(filled, *parameter.shape)``, oldest column first (copies)."""
        order = self._chronological()
        return {name: torch.stack([self._columns[k][i] for k in order]) for i, name in enumerate(self.names)}

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """The second moment and the deviations (oldest first) by name, whole tensors (a collective under
        FSDP2: every process must call it)."""
        second = dict(zip(self.names, self._second_views))
        deviations = self.deviations()
        return {
            "second_moment": {name: self._full(name, tensor) for name, tensor in second.items()},
            "deviations": {
                name: torch.stack([self._full(name, column) for column in columns]) if len(columns) else columns
                for name, columns in deviations.items()
            },
        }

    def _full(self, name: str, local: torch.Tensor) -> torch.Tensor:
        like = self.sharded_like.get(name)
        return full_tensor(local, like) if like is not None else local

    def _local(self, name: str, value: torch.Tensor, target_shape: torch.Size) -> torch.Tensor:
        like = self.sharded_like.get(name)
        if like is not None and tuple(value.shape) == tuple(like.shape) != tuple(target_shape):
            value = local_part(value, like)
        if tuple(value.shape) != tuple(target_shape):
            raise ValueError(f"SWAG moment {name!r} has shape {tuple(value.shape)}, the model has {tuple(target_shape)}")
        return value

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        """Restores :meth:`state_dict` (each process takes its slices); raises naming what does not match."""
        second, deviations = state["second_moment"], state["deviations"]
        for kind, saved in (("second_moment", second), ("deviations", deviations)):
            missing, unexpected = sorted(set(self.names) - set(saved)), sorted(set(saved) - set(self.names))
            if missing or unexpected:
                raise KeyError(f"SWAG {kind} does not match the model: missing {missing}, unexpected {unexpected}")
        counts = sorted({len(columns) for columns in deviations.values()}) or [0]
        count = counts[0]
        if len(counts) > 1 or count > self.max_rank:
            raise ValueError(f"the saved SWAG deviations hold {counts} columns; this SWAG keeps at most max_rank={self.max_rank}")
        for i, name in enumerate(self.names):
            self._second_views[i].copy_(self._local(name, second[name], self._second_views[i].shape))
            for k in range(count):
                self._columns[k][i].copy_(self._local(name, deviations[name][k], self._columns[k][i].shape))
        self.filled, self.next_column = count, count % self.max_rank
