"""Bayesian model averaging with a SWAG posterior: the mean of the softmax of many weight samples.

For each sample the weights are drawn (:meth:`SWAGPosterior.sample_into
<composer_swa.averaging.swag_posterior.SWAGPosterior.sample_into>`), the batch-norm statistics are
recomputed for them by the sample-weighted pass of :mod:`composer_swa.averaging.bn` (over at most
``bn_batches`` training batches, as the paper refreshes them on a subset), and the class
probabilities over the data are accumulated: ``p(y | x) ≈ (1/S) Σ_s softmax(f(x; θ_s))``
(Maddox et al. 2019, §4).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from composer_swa.averaging.bn import batch_norm_layers, recompute_batch_norm
from composer_swa.averaging.model_average import named_state_tensors
from composer_swa.model_calls import statistics_forward

if TYPE_CHECKING:
    from composer_swa.averaging.swag_posterior import SWAGPosterior

__all__ = ["Prediction", "bayesian_predict", "predict"]


class Prediction(NamedTuple):
    """Class probabilities ``(N, C)`` over a dataset in its order, and its integer targets ``(N,)`` (``None``
    when its batches carry none: ``(inputs, targets)`` tuples and dicts with ``"labels"`` do)."""

    probabilities: torch.Tensor
    targets: torch.Tensor | None


def _logits(outputs: Any) -> torch.Tensor:
    logits = outputs["logits"] if isinstance(outputs, Mapping) and "logits" in outputs else outputs
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise TypeError(
            "predicting needs class logits of shape (batch, classes): a tensor or a dict with 'logits'; "
            f"got {type(outputs).__name__}"
        )
    return logits


def _targets(batch: Any) -> torch.Tensor | None:
    if isinstance(batch, (tuple, list)) and len(batch) > 1 and isinstance(batch[1], torch.Tensor):
        return batch[1]
    if isinstance(batch, Mapping) and isinstance(batch.get("labels"), torch.Tensor):
        return batch["labels"]
    return None


@torch.no_grad()
def predict(model: torch.nn.Module, dataloader: Iterable[Any], forward: Callable[[Any], Any] | None = None) -> Prediction:
    """The softmax of ``model``'s logits over ``dataloader`` (eval mode; the model's mode is restored).

    Args:
        model: A classifier returning logits ``(batch, classes)`` (or a dict with ``"logits"``).
        dataloader: The data, in the order the probabilities come out.
        forward: Runs the model on one batch; default :func:`~composer_swa.model_calls.statistics_forward`.

    Example:
        >>> model = torch.nn.Linear(3, 4)
        >>> data = [(torch.randn(5, 3), torch.randint(0, 4, (5,)))] * 2
        >>> prediction = predict(model, data)
        >>> prediction.probabilities.shape, prediction.targets.shape
        (torch.Size([10, 4]), torch.Size([10]))
    """
    run = forward if forward is not None else statistics_forward(model)
    was_training = model.training
    model.eval()
    probabilities: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    try:
        for batch in dataloader:
            probabilities.append(torch.softmax(_logits(run(batch)).float(), dim=-1).cpu())
            target = _targets(batch)
            if target is not None:
                targets.append(target.cpu())
    finally:
        model.train(was_training)
    stacked = torch.cat(probabilities) if probabilities else torch.empty(0, 0)
    return Prediction(stacked, torch.cat(targets) if len(targets) == len(probabilities) and targets else None)


@torch.no_grad()
def bayesian_predict(
    posterior: SWAGPosterior,
    model: torch.nn.Module,
    dataloader: Iterable[Any],
    *,
    num_samples: int = 30,
    scale: float = 0.5,
    bn_dataloader: Iterable[Any] | None = None,
    bn_batches: int | None = None,
    generator: torch.Generator | None = None,
    diagonal_only: bool = False,
    bn_forward: Callable[[Any], Any] | None = None,
) -> Prediction:
    """The SWAG ensemble's probabilities over ``dataloader``: the mean softmax of ``num_samples`` weight samples.

    ``model`` gets its weights back (parameters and buffers) when it returns.

    Args:
        posterior: The posterior to sample (``swag.posterior()`` or :meth:`SWAGPosterior.from_file`).
        model: A model of the posterior's architecture; its weights are replaced by each sample in turn.
        dataloader: The data to predict.
        num_samples: ``S``, the samples averaged (the paper uses 30).
        scale: The covariance scale of :meth:`SWAGPosterior.sample` (0.5: the paper's).
        bn_dataloader: Training data for each sample's batch-norm pass; needed when the model has batch norm.
        bn_batches: Use at most this many batches of ``bn_dataloader`` per pass (``None``: all).
        generator: The random numbers; seed it alike on every process under torch.distributed.
        diagonal_only: Sample SWAG-Diagonal.
        bn_forward: How the batch-norm pass runs a batch (the Trainer's, for its device and precision).

    Example:
        >>> from composer_swa.averaging.swag_posterior import SWAGPosterior
        >>> model = torch.nn.Linear(3, 2)
        >>> weights = dict(named_state_tensors(model))
        >>> posterior = SWAGPosterior(
        ...     {n: w.detach().clone() for n, w in weights.items()},
        ...     {n: torch.full_like(w, 0.01) for n, w in weights.items()},
        ...     {n: torch.zeros(2, *w.shape) for n, w in weights.items()},
        ... )
        >>> data = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))]
        >>> ensemble = bayesian_predict(posterior, model, data, num_samples=3, generator=torch.Generator().manual_seed(0))
        >>> ensemble.probabilities.shape, bool(torch.allclose(ensemble.probabilities.sum(dim=1), torch.ones(4)))
        (torch.Size([4, 2]), True)
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if bn_batches is not None and (isinstance(bn_batches, bool) or not isinstance(bn_batches, int) or bn_batches < 1):
        raise ValueError(f"bn_batches must be a positive integer or None, got {bn_batches!r}")
    refresh = bool(batch_norm_layers(model))
    if refresh and bn_dataloader is None:
        raise ValueError("the model has batch norm: pass bn_dataloader (training data) to recompute its statistics per sample")
    saved = [(tensor, tensor.detach().clone()) for _, tensor in named_state_tensors(model)]
    total: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    try:
        for _ in range(num_samples):
            posterior.sample_into(model, scale, generator, diagonal_only)
            if refresh:
                assert bn_dataloader is not None
                recompute_batch_norm(model, itertools.islice(bn_dataloader, bn_batches), bn_forward)
            prediction = predict(model, dataloader)
            total = prediction.probabilities if total is None else total + prediction.probabilities
            targets = prediction.targets
    finally:
        for tensor, value in saved:
            tensor.copy_(value)
    assert total is not None
    return Prediction(total / num_samples, targets)
