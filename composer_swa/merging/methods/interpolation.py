"""Spherical interpolation: SLERP, NuSLERP, Multi-SLERP and the Karcher mean, each streamed by a Gram pass.

Every one of them returns a linear combination of its inputs whose coefficients depend only on the
inputs' norms and angles over the whole tensor, so a first pass sums their Gram matrix
``G[i, j] = ⟨xᵢ, xⱼ⟩`` over slices (float64), the coefficients are computed from ``G`` (an N×N
problem), and a second pass writes ``Σ cᵢ xᵢ``. Memory: the inputs' slices, never a whole tensor.
Formulas as in mergekit (``merge_methods/slerp.py``, ``nuslerp.py``, ``multislerp.py``, ``karcher.py``).
"""

from __future__ import annotations

import math

import torch

from composer_swa.merging.methods.kernel import Pass, Resolved, Stats, TensorKernel, TensorSlice, combine, gram_pass

__all__ = ["karcher", "multislerp", "nuslerp", "slerp"]


def _slerp_coefficients(t: float, dot: float, linear: bool) -> tuple[float, float]:
    if linear:
        return 1.0 - t, t
    theta = math.acos(dot)
    return math.sin((1 - t) * theta) / math.sin(theta), math.sin(t * theta) / math.sin(theta)


def _slerp_finish(g: torch.Tensor, params: Resolved, stats: Stats) -> None:
    norms = [float(g[i, i]) ** 0.5 for i in range(2)]
    norms = [n if n > 1e-8 else 1.0 for n in norms]
    dot = min(1.0, max(-1.0, float(g[0, 1]) / (norms[0] * norms[1])))
    stats["c"] = _slerp_coefficients(params.shared["t"], dot, abs(dot) > 0.9995)


#: SLERP (Shoemake 1985): from the base ``θ₀`` (``t = 0``) to the other model ``θ₁`` (``t = 1``) along the great
#: circle through them: ``sin((1−t)Ω)/sin Ω · θ₀ + sin(tΩ)/sin Ω · θ₁`` with ``cos Ω = ⟨θ₀, θ₁⟩ / (‖θ₀‖ ‖θ₁‖)`` over
#: the whole tensor; linear interpolation when ``|cos Ω| > 0.9995``. One Gram pass.
slerp = TensorKernel(
    merge=lambda piece, params, stats: combine(stats["c"], [piece.base, piece.tensors[0]]),  # type: ignore[list-item]
    passes=lambda params, shape: [gram_pass(lambda piece: [piece.base, piece.tensors[0]], _slerp_finish)],  # type: ignore[list-item]
)


def _nuslerp_t(params: Resolved) -> float:
    weights = params.values("weight")
    total = sum(weights)
    return 0.5 if abs(total) < 1e-6 else weights[1] / total


def _nuslerp_coefficients(
    square0: torch.Tensor, square1: torch.Tensor, dot: torch.Tensor, t: float
) -> tuple[torch.Tensor, torch.Tensor]:
    cos = (dot / (square0.sqrt().clamp(min=1e-7) * square1.sqrt().clamp(min=1e-7))).clamp(-1, 1)
    colinear = (1 - cos.square()) <= 1e-16
    theta = torch.acos(torch.where(colinear, 0, cos))
    sin = torch.sin(theta)
    first = torch.where(colinear, 1 - t, torch.sin((1 - t) * theta) / sin)
    second = torch.where(colinear, t, torch.sin(t * theta) / sin)
    return first, second


def _nuslerp_vectors(piece: TensorSlice) -> list[torch.Tensor]:
    return piece.deltas() if piece.base is not None else piece.tensors


def _nuslerp_mode(params: Resolved, shape: tuple[int, ...]) -> str:
    if params.shared["nuslerp_flatten"] or len(shape) < 2:
        return "flatten"  # a vector's rows and columns are the whole vector
    return "columns" if params.shared["nuslerp_row_wise"] else "rows"


def _nuslerp_passes(params: Resolved, shape: tuple[int, ...]) -> list[Pass]:
    mode = _nuslerp_mode(params, shape)
    if mode == "flatten":

        def finish(g: torch.Tensor, params: Resolved, stats: Stats) -> None:
            stats["c"] = _nuslerp_coefficients(g[0, 0], g[1, 1], g[0, 1], _nuslerp_t(params))

        return [gram_pass(_nuslerp_vectors, finish)]
    if mode == "columns":  # angles between columns: sums over dim 0, kept per column

        def column_sums(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
            a, b = (v.to(torch.float64) for v in _nuslerp_vectors(piece))
            return torch.stack([(a * a).sum(0), (b * b).sum(0), (a * b).sum(0)])

        def finish_columns(total: torch.Tensor, params: Resolved, stats: Stats, shape: tuple[int, ...]) -> None:
            stats["c"] = _nuslerp_coefficients(total[0], total[1], total[2], _nuslerp_t(params))

        return [Pass(column_sums, finish_columns)]
    return []


def _nuslerp_merge(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
    a, b = _nuslerp_vectors(piece)
    if "c" in stats:
        first, second = stats["c"]
    else:  # angles between the rows (last dim), each within this slice
        wide_a, wide_b = a.to(torch.float64), b.to(torch.float64)
        first, second = _nuslerp_coefficients(
            (wide_a * wide_a).sum(-1, keepdim=True), (wide_b * wide_b).sum(-1, keepdim=True),
            (wide_a * wide_b).sum(-1, keepdim=True), _nuslerp_t(params),
        )  # fmt: skip
    result = first.to(torch.float32) * a + second.to(torch.float32) * b
    return result + piece.base if piece.base is not None else result


#: NuSLERP (mergekit): SLERP of two models' weights — or, with a base, of their task vectors, added to it — at
#: ``t = w₁ / (w₀ + w₁)``; angles over the whole tensor (``nuslerp_flatten``, one Gram pass), per row
#: (within a slice), or per column (``nuslerp_row_wise``, a pass of per-column sums).
nuslerp = TensorKernel(merge=_nuslerp_merge, passes=_nuslerp_passes)


def _normalized_weights(params: Resolved) -> list[float]:
    weights = [float(w) for w in params.values("weight")]
    if params.shared["normalize_weights"]:
        total = sum(weights)
        weights = [w / total for w in weights]
    return weights


def _multislerp_finish(g: torch.Tensor, params: Resolved, stats: Stats) -> None:
    eps = params.shared["eps"]
    w = torch.tensor(_normalized_weights(params), dtype=torch.float64)
    norms = g.diagonal().clamp(min=0).sqrt()
    c = w / (norms + eps)  # the weighted mean of the unit vectors, as a combination of the inputs
    mean_norm = float(c @ g @ c) ** 0.5
    if mean_norm < eps:
        if len(w) == 2:
            stats["c"] = w.tolist()
            return
        raise ValueError(
            f"multislerp: the weighted mean of the inputs' directions is zero (antipodal inputs with "
            f"balancing weights); choose other weights (weights {w.tolist()!r})"
        )
    m = c / mean_norm
    dots = (g @ m) / (norms + eps)
    tangent = w / (norms + eps) - (w * dots).sum() * m
    tangent_norm = float(tangent @ g @ tangent) ** 0.5 + eps
    direction = m * math.cos(tangent_norm) + tangent * (math.sin(tangent_norm) / tangent_norm)
    stats["c"] = (direction * float((norms * w).sum())).tolist()


def _multislerp_merge(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
    if len(piece.tensors) == 1:
        return piece.tensors[0]
    result = combine(stats["c"], _nuslerp_vectors(piece))
    return result + piece.base if piece.base is not None else result


#: Multi-SLERP (Goddard 2024): barycentric interpolation of N models on the hypersphere — unit directions
#: averaged with weights, projected to the tangent space at their mean, mapped back by the exponential map,
#: scaled by the weighted mean norm; with a base, of the task vectors. One Gram pass.
multislerp = TensorKernel(
    merge=_multislerp_merge,
    passes=lambda params, shape: [gram_pass(_nuslerp_vectors, _multislerp_finish)] if len(params.each) > 1 else [],
)


def _karcher_coefficients(g: torch.Tensor, max_iter: int, tol: float) -> list[float]:
    count = g.shape[0]
    norms = g.diagonal().clamp(min=0).sqrt()
    valid = [i for i in range(count) if float(norms[i]) > tol]
    if not valid:
        return [0.0] * count
    alpha = 1.0 / len(valid)

    def unit(i: int) -> torch.Tensor:
        e = torch.zeros(count, dtype=torch.float64)
        e[i] = 1.0 / norms[i]
        return e

    def norm(v: torch.Tensor) -> float:
        return float(v @ g @ v) ** 0.5 if float(v @ g @ v) > 0 else 0.0

    mean = sum((alpha * unit(i) for i in valid), torch.zeros(count, dtype=torch.float64))
    mean = unit(valid[0]) if norm(mean) < tol else mean / norm(mean)
    for _ in range(max_iter):
        tangent = torch.zeros(count, dtype=torch.float64)
        for i in valid:
            dot = min(1.0, max(-1.0, float(mean @ g @ unit(i))))
            theta = math.acos(dot)
            if theta < tol:
                continue
            tangent += alpha * (theta / math.sin(theta)) * (unit(i) - dot * mean)
        tangent_norm = norm(tangent)
        if tangent_norm < tol:
            break
        mean = math.cos(tangent_norm) * mean + math.sin(tangent_norm) * (tangent / tangent_norm)
        if (unit_norm := norm(mean)) > tol:
            mean = mean / unit_norm
    scale = float(norms.sum()) / count
    return (scale * mean).tolist()


def _karcher_finish(g: torch.Tensor, params: Resolved, stats: Stats) -> None:
    stats["c"] = _karcher_coefficients(g, params.shared["max_iter"], params.shared["tol"])


def _karcher_merge(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
    return piece.tensors[0] if len(piece.tensors) == 1 else combine(stats["c"], piece.tensors)


def _karcher_passes(params: Resolved, shape: tuple[int, ...]) -> list[Pass]:
    return [gram_pass(lambda piece: piece.tensors, _karcher_finish)] if len(params.each) > 1 else []


#: Karcher mean (Karcher 1977; Riemannian centre of mass): the point on the unit sphere minimising the summed
#: squared geodesic distance to the inputs' directions, found by fixed-point iteration
#: ``μ ← exp_μ(Σ αᵢ θᵢ/sin θᵢ (uᵢ − cos θᵢ μ))``, scaled by the mean norm. The iteration runs on the Gram
#: matrix (one pass), the output in a second.
karcher = TensorKernel(merge=_karcher_merge, passes=_karcher_passes)
