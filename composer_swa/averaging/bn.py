"""Recomputing batch-norm statistics for averaged weights: one pass over the data, sample-weighted.

Averaged weights need fresh batch-norm statistics: the running means and variances gathered while
training describe activations of the live weights, not of their average (Izmailov et al. 2018, §3.2).
``torch.optim.swa_utils.update_bn`` recomputes them as an equal-weight mean of per-batch statistics,
so a short last batch counts as much as a full one and the variance misses the spread between batch
means. Here each normalization layer's input is summed per channel in fp64 over the whole pass, so
``running_mean`` and ``running_var`` are exactly the mean and (unbiased) variance over every sample,
whatever the batch sizes or microbatching. Under torch.distributed each process sums its own share
and the sums are combined across processes (Chan et al.'s pairwise update of means and squared
deviations), so every process ends with the statistics of the whole dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from composer_swa.distributed.process_group import is_distributed, reduce_sum
from composer_swa.model_calls import statistics_forward

__all__ = ["batch_norm_layers", "recompute_batch_norm"]


def batch_norm_layers(model: torch.nn.Module) -> list[_BatchNorm]:
    """Batch-norm layers that keep running statistics (those a statistics pass must refresh)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


class _ChannelMoments:
    """Per-channel count (samples × positions), shifted sum and shifted sum of squares of a layer's inputs, in fp64.

    The shift (the first batch's mean) keeps ``E[x²] - E[x]²`` accurate when the mean is far from zero.
    """

    def __init__(self) -> None:
        self.count = 0
        self.samples = 0
        self.shift: torch.Tensor | None = None
        self.total: torch.Tensor | None = None
        self.total_squares: torch.Tensor | None = None

    def __call__(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].detach()
        dims = [0, *range(2, x.dim())]
        if self.shift is None:
            self.shift = x.float().mean(dim=dims)
        centered = x.float() - self.shift.view(-1, *([1] * (x.dim() - 2)))
        total = centered.sum(dim=dims, dtype=torch.float64)
        total_squares = centered.square().sum(dim=dims, dtype=torch.float64)
        self.total = total if self.total is None else self.total + total
        self.total_squares = total_squares if self.total_squares is None else self.total_squares + total_squares
        self.count += x.numel() // x.shape[1]
        self.samples += x.shape[0]

    def mean_and_squared_deviations(self, channels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and sum of squared deviations from it, in fp64 (zeros when nothing was seen)."""
        if self.count == 0 or self.shift is None or self.total is None or self.total_squares is None:
            zeros = torch.zeros(channels, dtype=torch.float64, device=device)
            return zeros, zeros.clone()
        centered_mean = self.total / self.count
        squared_deviations = (self.total_squares - self.total * centered_mean).clamp_min(0)
        return self.shift.double() + centered_mean, squared_deviations


@torch.no_grad()
def recompute_batch_norm(model: torch.nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any] | None = None) -> int:
    """Sets every batch-norm layer's running statistics to the exact statistics of its inputs over ``batches``.

    The model runs in eval mode except for its batch-norm layers, which normalize with batch
    statistics as in training: dropout and other train-time noise stay off, as at evaluation. The
    optimizer is never touched and no gradient is computed. ``num_batches_tracked`` becomes the
    number of batches in the pass.

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
    moments = [_ChannelMoments() for _ in layers]
    handles = [layer.register_forward_pre_hook(moment) for layer, moment in zip(layers, moments)]
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
        for module, training in was_training.items():
            module.train(training)
    if is_distributed():
        batch_count = _reduce_max(batch_count, _device_of(layers[0]))
    for layer, moment in zip(layers, moments):
        _store_statistics(layer, moment, batch_count)
    return int(reduce_sum(torch.tensor([moments[0].samples], device=_device_of(layers[0]))).item())


def _device_of(layer: _BatchNorm) -> torch.device:
    assert layer.running_mean is not None
    return layer.running_mean.device


def _reduce_max(value: int, device: torch.device) -> int:
    import torch.distributed as dist

    tensor = torch.tensor([value], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def _store_statistics(layer: _BatchNorm, moment: _ChannelMoments, batch_count: int) -> None:
    assert layer.running_mean is not None and layer.running_var is not None and layer.num_batches_tracked is not None
    device = _device_of(layer)
    mean, squared_deviations = moment.mean_and_squared_deviations(layer.num_features, device)
    count = float(moment.count)
    if is_distributed():
        # Chan et al.: N = Σ n_r, mean = Σ n_r·mean_r / N, M2 = Σ [M2_r + n_r·(mean_r − mean)²].
        totals = reduce_sum(torch.cat([torch.tensor([count], dtype=torch.float64, device=device), count * mean]))
        global_count = float(totals[0].item())
        global_mean = totals[1:] / max(global_count, 1.0)
        squared_deviations = reduce_sum(squared_deviations + count * (mean - global_mean).square())
        count, mean = global_count, global_mean
    if count == 0:
        raise ValueError(f"the statistics pass saw no input for {layer!r}; the data passed to it is empty")
    biased_var = squared_deviations / count
    # PyTorch keeps the unbiased variance in running_var; a single sample has none to speak of.
    unbiased_var = biased_var * (count / (count - 1)) if count > 1 else biased_var
    layer.running_mean.copy_(mean)
    layer.running_var.copy_(unbiased_var)
    layer.num_batches_tracked.fill_(batch_count)
