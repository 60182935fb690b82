"""Model Stock, NearSwap and passthrough (layer stacking)."""

from __future__ import annotations

import torch

from composer_swa.merging.methods.kernel import Pass, Resolved, Stats, TensorKernel, TensorSlice, gram_pass

__all__ = ["model_stock", "nearswap", "passthrough"]


def _stock_ratio(cos: torch.Tensor, count: int) -> torch.Tensor:
    denominator = 1 + (count - 1) * cos
    singular = denominator.abs() < 1e-6
    return torch.where(singular, torch.zeros_like(cos), count * cos / torch.where(singular, 1, denominator))


def _stock_finish(g: torch.Tensor, params: Resolved, stats: Stats) -> None:
    count = g.shape[0]
    norms = g.diagonal().clamp(min=0).sqrt()
    pairs = [(g[i, j] / (norms[i] * norms[j]).clamp(min=1e-6)).clamp(-1, 1) for i in range(count) for j in range(i + 1, count)]
    stats["t"] = float(_stock_ratio(torch.stack(pairs).mean(), count))


def _filter_wise(params: Resolved, shape: tuple[int, ...]) -> bool:
    return bool(params.shared["filter_wise"]) and len(shape) >= 2


def _stock_passes(params: Resolved, shape: tuple[int, ...]) -> list[Pass]:
    return [] if _filter_wise(params, shape) else [gram_pass(lambda piece: piece.deltas(), _stock_finish)]


def _stock_merge(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
    assert piece.base is not None
    count = len(piece.tensors)
    if "t" in stats:
        t: torch.Tensor | float = stats["t"]
    else:  # filter-wise: the angle between the task vectors of each row (last dim), within this slice
        deltas = [delta.to(torch.float64) for delta in piece.deltas()]
        norms = [delta.norm(dim=-1) for delta in deltas]
        pairs = [
            ((deltas[i] * deltas[j]).sum(-1) / (norms[i] * norms[j]).clamp(min=1e-6)).clamp(-1, 1)
            for i in range(count) for j in range(i + 1, count)
        ]  # fmt: skip
        t = _stock_ratio(torch.stack(pairs).mean(0), count).unsqueeze(-1).to(torch.float32)
    merged = piece.tensors[0]  # the slice's own fp32 copy, read for this merge: summed in place
    for tensor in piece.tensors[1:]:
        merged += tensor
    merged.mul_(t / count)
    return merged.add_(piece.base, alpha=1 - t) if isinstance(t, float) else merged.add_(piece.base * (1 - t))


#: Model Stock (Jang et al. 2024, arXiv 2403.19522): with ``cos θ`` the mean cosine between the fine-tuned models'
#: task vectors, ``t = N cos θ / (1 + (N − 1) cos θ)`` and ``θ = t·mean(θᵢ) + (1 − t)·θ_base`` (the base where
#: the denominator vanishes); per tensor (one Gram pass) or, with ``filter_wise``, per row.
model_stock = TensorKernel(merge=_stock_merge, passes=_stock_passes)


def _nearswap_merge(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
    assert piece.base is not None
    other = piece.tensors[0]
    weight = (params.shared["t"] / (piece.base - other).abs().clamp(min=1e-6)).clamp(0, 1)
    return weight * other + (1 - weight) * piece.base


#: NearSwap (alchemonaut, QuartetAnemoi 2024): take the other model's value where it lies near the base's,
#: ``w = clamp(t / |θ_base − θ₁|, 0, 1)``, ``θ = w·θ₁ + (1 − w)·θ_base``. Elementwise.
nearswap = TensorKernel(merge=_nearswap_merge)


def _passthrough_merge(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
    scale = params.each[0]["scale"]
    return piece.tensors[0] if scale is None else piece.tensors[0] * scale


#: Passthrough (mergekit): one input's tensor as it is (times ``scale`` if given); with ``slices`` it stacks
#: layer ranges of models into a deeper one ("frankenmerges").
passthrough = TensorKernel(merge=_passthrough_merge)
