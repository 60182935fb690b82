"""Recomputing batch-norm statistics for averaged weights: one pass over the data, sample-weighted.

Averaged weights need fresh batch-norm statistics: the running means and variances gathered while
training describe activations of the live weights, not of their average (Izmailov et al. 2018, §3.2).
``torch.optim.swa_utils.update_bn`` recomputes them as an equal-weight mean of per-batch statistics,
so a short last batch counts as much as a full one and the variance misses the spread between batch
means. Here every batch's per-channel count, mean and variance are pooled in fp64 with Chan et al.'s
formula, so ``running_mean`` and ``running_var`` are exactly the mean and (unbiased) variance over
every sample, whatever the batch sizes or microbatching. Under torch.distributed the same formula
pools the processes' statistics, so every process ends with the statistics of the whole dataset.

Each layer computes its batch's statistics itself, as in training: with ``momentum=1.0`` during the
pass its running buffers hold exactly the last batch's mean and unbiased variance, which a forward
hook reads back. The pass then costs one forward. A layer whose forward is not torch's own
(``SyncBatchNorm``, whose statistics span all processes, or a user's subclass), or whose buffers are
not fp32/fp64, is measured from its input instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parameter import is_lazy

from composer_swa.distributed.process_group import is_distributed, reduce_sum
from composer_swa.model_calls import statistics_forward

__all__ = ["batch_norm_layers", "recompute_batch_norm"]

_FOLD_EVERY = 64  # batches kept per layer before they are pooled: bounds memory, amortizes the stacking


def batch_norm_layers(model: torch.nn.Module) -> list[_BatchNorm]:
    """Batch-norm layers that keep running statistics (those a statistics pass must refresh)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def pooled_moments(
    counts: torch.Tensor, means: torch.Tensor, squared_deviations: torch.Tensor, total: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chan et al.'s pooling of groups: N = Σ n_g, mean = Σ n_g·mean_g / N, M2 = Σ [M2_g + n_g·(mean_g − mean)²].

    ``total`` sums over the groups: over dim 0 for batches stacked in one process, across processes
    for one group per process. ``M2`` is a sum of squared deviations from the mean; all in fp64.

    Example:
        >>> x = torch.tensor([[1.0], [2.0], [4.0], [7.0]], dtype=torch.float64)
        >>> a, b = x[:1], x[1:]
        >>> counts = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
        >>> means = torch.stack([a.mean(0), b.mean(0)])
        >>> m2 = torch.stack([((a - a.mean(0)) ** 2).sum(0), ((b - b.mean(0)) ** 2).sum(0)])
        >>> n, mean, squared = pooled_moments(counts, means, m2, lambda t: t.sum(0))
        >>> n.item(), mean.item(), squared.item(), ((x - x.mean()) ** 2).sum().item()
        (4.0, 3.5, 21.0, 21.0)
    """
    count = total(counts.clone())  # a collective sums in place; the weights below need this group's own counts
    mean = total(counts * means) / count.clamp_min(1)
    return count, mean, total(squared_deviations + counts * (means - mean).square())


class _LayerMoments:
    """A layer's per-batch counts, means and unbiased variances, pooled into fp64 every few batches."""

    def __init__(self, layer: _BatchNorm) -> None:
        self.layer = layer
        self.samples = 0
        self.counts: list[int] = []
        self.means: list[torch.Tensor] = []
        self.variances: list[torch.Tensor] = []
        self.pooled: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def add(self, x: torch.Tensor, mean: torch.Tensor, unbiased_variance: torch.Tensor) -> None:
        self.counts.append(x.numel() // x.shape[1])
        self.samples += x.shape[0]
        self.means.append(mean)
        self.variances.append(unbiased_variance)
        if len(self.counts) >= _FOLD_EVERY:
            self.fold()

    def read_running(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
        assert self.layer.running_mean is not None and self.layer.running_var is not None
        self.add(inputs[0], self.layer.running_mean.clone(), self.layer.running_var.clone())

    def measure_input(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].detach()
        variance, mean = torch.var_mean(x.float(), dim=[0, *range(2, x.dim())], correction=1)
        self.add(x, mean, variance)

    def fold(self) -> None:
        if not self.counts:
            return
        means = torch.stack(self.means).double()
        counts = torch.tensor(self.counts, dtype=torch.float64, device=means.device).unsqueeze(1)
        squares = torch.stack(self.variances).double() * (counts - 1)
        if self.pooled is not None:
            counts = torch.cat([self.pooled[0].unsqueeze(1), counts])
            means = torch.cat([self.pooled[1].unsqueeze(0), means])
            squares = torch.cat([self.pooled[2].unsqueeze(0), squares])
        self.pooled = pooled_moments(counts, means, squares, lambda t: t.sum(0))
        self.counts, self.means, self.variances = [], [], []


def _computes_own_statistics(layer: _BatchNorm) -> bool:
    assert layer.running_mean is not None
    return type(layer).forward is _BatchNorm.forward and layer.running_mean.dtype in (torch.float32, torch.float64)


@torch.no_grad()
def recompute_batch_norm(model: torch.nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any] | None = None) -> int:
    """Sets every batch-norm layer's running statistics to the exact statistics of its inputs over ``batches``.

    The model runs in eval mode except for its batch-norm layers, which normalize with batch
    statistics as in training: dropout and other train-time noise stay off, as at evaluation. The
    optimizer is never touched and no gradient is computed. ``num_batches_tracked`` becomes the
    number of batches in the pass; each layer's ``momentum`` is left as it was.

    Args:
        model: The model holding the weights to gather statistics for (e.g. the SWA average).
        batches: The data, typically one epoch of the training loader. Tuple, list, dict and tensor
            batches work with the default ``forward``.
        forward: Runs the model on one batch; default: ``statistics_forward(model)`` of
            :mod:`composer_swa.model_calls`. The Trainer passes one with its device, precision and microbatches.

    Returns:
        The number of samples seen by the first batch-norm layer, over all processes (0 if the model has none).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> data = [(torch.randn(8, 3), None), (torch.randn(5, 3), None)]
        >>> recompute_batch_norm(model, data)
        13
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    # Every process must join the collectives below, even one whose share of the data is empty.
    run = forward if forward is not None else statistics_forward(model)
    moments = [_LayerMoments(layer) for layer in layers]
    momenta = [layer.momentum for layer in layers]
    handles = []
    for layer, moment in zip(layers, moments):
        if _computes_own_statistics(layer):
            if layer.running_mean is not None and not is_lazy(layer.running_mean):
                layer.reset_running_stats()  # momentum 1.0 keeps 0·old: old must be finite
            layer.momentum = 1.0
            handles.append(layer.register_forward_hook(moment.read_running))
        else:
            handles.append(layer.register_forward_pre_hook(moment.measure_input))
    was_training = {module: module.training for module in model.modules()}
    batch_count = 0
    try:
        model.eval()
        for layer in layers:
            layer.train()
        for batch in batches:
            run(batch)
            batch_count += 1
    finally:
        for handle in handles:
            handle.remove()
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for module, training in was_training.items():
            module.train(training)
    if is_distributed():
        batch_count = _reduce_max(batch_count, _device_of(layers[0]))
    for moment in moments:
        moment.fold()
        _store_statistics(moment, batch_count)
    return int(reduce_sum(torch.tensor([moments[0].samples], device=_device_of(layers[0]))).item())


def _device_of(layer: _BatchNorm) -> torch.device:
    assert layer.running_mean is not None
    return layer.running_mean.device


def _reduce_max(value: int, device: torch.device) -> int:
    import torch.distributed as dist

    tensor = torch.tensor([value], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def _store_statistics(moment: _LayerMoments, batch_count: int) -> None:
    layer = moment.layer
    assert layer.running_mean is not None and layer.running_var is not None and layer.num_batches_tracked is not None
    if moment.pooled is None:  # this process saw no batch; it still joins the collectives
        zeros = torch.zeros(layer.num_features, dtype=torch.float64, device=_device_of(layer))
        moment.pooled = (zeros.new_zeros(1), zeros, zeros.clone())
    count, mean, squared_deviations = moment.pooled
    if is_distributed():
        count, mean, squared_deviations = pooled_moments(count, mean, squared_deviations, reduce_sum)
    total = float(count.item())
    if total == 0:
        raise ValueError(f"the statistics pass saw no input for {layer!r}; the data passed to it is empty")
    # PyTorch keeps the unbiased variance in running_var; a single sample has none to speak of.
    unbiased_var = squared_deviations / (total - 1) if total > 1 else squared_deviations
    layer.running_mean.copy_(mean)
    layer.running_var.copy_(unbiased_var)
    layer.num_batches_tracked.fill_(batch_count)
