"""Recomputing batch-norm statistics for averaged weights: one pass over the data, sample-weighted.

Averaged weights need fresh batch-norm statistics: the running means and variances gathered while
training describe activations of the live weights, not of their average (Izmailov et al. 2018, §3.2).
``torch.optim.swa_utils.update_bn`` recomputes them as an equal-weight mean of per-batch statistics,
so a short last batch counts as much as a full one and the variance misses the spread between batch
means. Here each normalization layer's input is summed per channel in fp64 over the whole pass, so
``running_mean`` and ``running_var`` are exactly the mean and (unbiased) variance over every sample,
whatever the batch sizes or microbatching.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from composer_swa.batches import default_forward

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
        forward: Runs the model on one batch; defaults to :func:`default_forward`. The Trainer
            passes its own, which honors precision and microbatching.

    Returns:
        The number of samples seen by the first batch-norm layer (0 if the model has none).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> data = [(torch.randn(8, 3), None), (torch.randn(5, 3), None)]
        >>> recompute_batch_norm(model, data)
        13
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    run = forward if forward is not None else default_forward(model)
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
    for layer, moment in zip(layers, moments):
        _store_statistics(layer, moment, batch_count)
    return moments[0].samples


def _store_statistics(layer: _BatchNorm, moment: _ChannelMoments, batch_count: int) -> None:
    if moment.count == 0 or moment.total is None or moment.total_squares is None or moment.shift is None:
        raise ValueError(f"the statistics pass saw no input for {layer!r}; the data passed to it is empty")
    assert layer.running_mean is not None and layer.running_var is not None and layer.num_batches_tracked is not None
    count = moment.count
    centered_mean = moment.total / count
    biased_var = (moment.total_squares / count - centered_mean.square()).clamp_min(0)
    # PyTorch keeps the unbiased variance in running_var; a single sample has none to speak of.
    unbiased_var = biased_var * (count / (count - 1)) if count > 1 else biased_var
    layer.running_mean.copy_(moment.shift.double() + centered_mean)
    layer.running_var.copy_(unbiased_var)
    layer.num_batches_tracked.fill_(batch_count)
