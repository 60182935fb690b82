"""Data-aware merges, which mergekit planned but never built (arcee-ai/mergekit#168): Fisher and RegMean.

Both run each input in the model of a ``swa-train`` config (``--config``) over its ``data.train``
and keep per-input statistics in memory (as the soups keep their candidates: these methods are for
models a config builds), then merge tensor by tensor, streamed like every other method:

- ``fisher`` (Matena & Raffel 2022, "Merging Models with Fisher-Weighted Averaging"): each input's
  diagonal empirical Fisher ``Fᵢ = mean over samples of (∂ loss/∂θ)²`` (the loss on the data's own
  labels, per sample), then ``θ = Σ λᵢ(Fᵢ + ε)θᵢ / Σ λᵢ(Fᵢ + ε)`` per entry (``weight`` λ,
  ``fisher_floor`` ε: where no input has information the result is the weighted mean). Buffers
  (batch-norm statistics) have no gradient and take the weighted mean.
- ``regmean`` (Jin et al. 2023, "Dataless Knowledge Fusion by Merging Weights of Language Models"):
  for each ``nn.Linear`` (``y = xWᵀ + b``), the Gram matrix of its inputs ``Gᵢ = Σ xxᵀ`` over the data,
  off-diagonal entries scaled by ``alpha``; the weight minimising ``Σᵢ‖XᵢWᵀ − XᵢWᵢᵀ‖²`` is
  ``W = (Σ WᵢGᵢ)(Σ Gᵢ)⁻¹``, merged row slice by row slice. Every other tensor is the mean.
"""

from __future__ import annotations

from typing import Any

import torch

from composer_swa.merging.methods.kernel import Resolved, Stats, TensorKernel, TensorSlice, combine
from composer_swa.merging.methods.registry import MergeInputs, MergeOptions, OptionError
from composer_swa.merging.plan import TensorPlan

__all__ = ["fisher", "regmean"]


def _inputs_used(plans: list[TensorPlan]) -> list[int]:
    return sorted({k for plan in plans for k, _ in plan.entries})


def _each_model(method: str, inputs: MergeInputs, plans: list[TensorPlan]) -> Any:
    """Yields ``(input index, model holding its weights, training batches)``."""
    from composer_swa.averaging.model_average import load_tracked_weights
    from composer_swa.merging.inputs import read_state_dicts

    if inputs.parts is None:
        raise OptionError(f"--method {method} needs --config naming the model and its data (data.train)")
    model, batches = inputs.parts.model, inputs.parts.train_dataloader
    for k in _inputs_used(plans):
        load_tracked_weights(model, read_state_dicts([inputs.paths[k]], inputs.target)[0])
        model.eval()
        yield k, model, batches


def _fisher_diagonals(options: MergeOptions, inputs: MergeInputs, plans: list[TensorPlan]) -> dict[int, dict[str, torch.Tensor]]:
    from composer_swa.batches import batch_num_samples, split_batch
    from composer_swa.model_calls import compute_loss, forward_batch

    diagonals = {}
    for k, model, batches in _each_model("fisher", inputs, plans):
        parameters = dict(model.named_parameters())
        sums = {name: torch.zeros_like(p) for name, p in parameters.items()}
        samples = 0
        for batch in batches:
            for sample in split_batch(batch, batch_num_samples(batch)):
                model.zero_grad(set_to_none=True)
                compute_loss(None, forward_batch(model, sample), sample).backward()
                for name, p in parameters.items():
                    if p.grad is not None:
                        sums[name] += p.grad.detach() ** 2
                samples += 1
        diagonals[k] = {name: (total / max(samples, 1)).to(torch.float32) for name, total in sums.items()}
        model.zero_grad(set_to_none=True)
    return diagonals


def _fisher_merge(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
    floor = params.shared["fisher_floor"]
    numerator = torch.zeros_like(piece.tensors[0])
    denominator = torch.zeros_like(piece.tensors[0])
    for k, name, tensor, weight in zip(piece.inputs, piece.sources, piece.tensors, params.values("weight")):
        diagonal = params.context[k].get(name)
        rows = diagonal[piece.start : piece.start + piece.rows] if diagonal is not None and diagonal.dim() else diagonal
        importance = (rows.reshape(tensor.shape) + floor) * weight if rows is not None else torch.full_like(tensor, weight)
        numerator += importance * tensor
        denominator += importance
    return numerator / denominator


#: Fisher-weighted averaging (Matena & Raffel 2022).
fisher = TensorKernel(merge=_fisher_merge, prepare=_fisher_diagonals)


def _input_grams(options: MergeOptions, inputs: MergeInputs, plans: list[TensorPlan]) -> dict[int, dict[str, torch.Tensor]]:
    grams: dict[int, dict[str, torch.Tensor]] = {}
    for k, model, batches in _each_model("regmean", inputs, plans):
        sums: dict[str, torch.Tensor] = {}

        def hook(name: str, sums: dict[str, torch.Tensor] = sums) -> Any:
            def record(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
                x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)
                sums[name] = sums.get(name, 0) + x.T @ x

            return record

        handles = [
            module.register_forward_hook(hook(f"{name}.weight"))
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)
        ]
        from composer_swa.model_calls import forward_batch

        try:
            with torch.no_grad():
                for batch in batches:
                    forward_batch(model, batch)
        finally:
            for handle in handles:
                handle.remove()
        grams[k] = sums
    return grams


def _regmean_merge(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
    grams = [params.context[k].get(name) for k, name in zip(piece.inputs, piece.sources)]
    if any(g is None for g in grams) or piece.tensors[0].dim() != 2:
        return combine([1 / len(piece.tensors)] * len(piece.tensors), piece.tensors)
    alpha = params.shared["alpha"]
    reduced = [alpha * g + (1 - alpha) * torch.diag(g.diagonal()) for g in grams if g is not None]
    if "inverse" not in stats:
        stats["inverse"] = torch.linalg.pinv(sum(reduced[1:], reduced[0]), hermitian=True)
    weighted = sum((w.to(torch.float64) @ g for w, g in zip(piece.tensors, reduced)), torch.zeros(1, dtype=torch.float64))
    return (weighted @ stats["inverse"]).to(torch.float32)


#: RegMean (Jin et al. 2023).
regmean = TensorKernel(merge=_regmean_merge, prepare=_input_grams)
