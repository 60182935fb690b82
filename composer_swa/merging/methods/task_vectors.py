"""Merges of task vectors ``δᵢ = θᵢ − θ_base``: task arithmetic, TIES, DARE, breadcrumbs, DELLA (one
generalised formula, as mergekit's ``generalized_task_arithmetic.py``) and SCE.

The generalised formula, per tensor, with each input's weight ``wᵢ``:

1. sparsify each task vector (:mod:`~composer_swa.merging.methods.sparsify`): ``δᵢ ← sparsify(δᵢ, dᵢ)``;
2. weigh it: ``τᵢ = wᵢ·δᵢ``;
3. with sign consensus (TIES, Yadav et al. 2023): the elected sign is that of ``Σ τᵢ`` (+ at 0), and
   only entries agreeing with it count: ``mᵢ = [sign τᵢ = elected]``, ``τ = Σ mᵢτᵢ``, divisor
   ``Σ mᵢwᵢ`` (1 where 0); without: ``τ = Σ τᵢ``, divisor ``Σ wᵢ`` (1 where ``|·| < 1e-8``);
4. ``θ = θ_base + λ·τ / divisor`` with ``normalize``, else ``θ_base + λ·τ``.

Every step but the sparsification is elementwise, so slices stream; whole-tensor ranks and L1
norms come from first passes. ``int8_mask`` is accepted and changes nothing (in mergekit it only
stores the mask in int8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from composer_swa.merging.methods import sparsify as sparsifiers
from composer_swa.merging.methods.kernel import Pass, Resolved, Stats, TensorKernel, TensorSlice
from composer_swa.merging.methods.ranks import rank_passes, ranked_below

__all__ = [
    "breadcrumbs",
    "breadcrumbs_ties",
    "dare_linear",
    "dare_ties",
    "della",
    "della_linear",
    "sce",
    "task_arithmetic",
    "ties",
]


def _elected_sum(
    terms: list[torch.Tensor], factors: list[float], weights: list[float]
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """TIES' sign election: ``(Σ mᵢ·fᵢ·termᵢ, Σ mᵢ·wᵢ)``, ``mᵢ = [sign termᵢ = sign Σ termⱼ]`` (+ where the sum is 0).

    Consumes ``terms`` (fresh tensors, overwritten). With the elected sign ``s = ±1``, ``mᵢ·termᵢ =
    s·max(s·termᵢ, 0)``: each input costs a few in-place passes and one mask, not a mask per step.
    """
    sign = terms[0].clone()
    for term in terms[1:]:
        sign += term
    sign = torch.where(sign >= 0, 1.0, -1.0)
    mixed = torch.zeros_like(sign)
    divisor = torch.zeros_like(sign)
    for term, factor, weight in zip(terms, factors, weights):
        term.mul_(sign)
        divisor.add_(term > 0, alpha=weight)  # sign 0 is never elected: a dropped entry does not count
        mixed.add_(term.clamp_(min=0), alpha=factor)
    return mixed.mul_(sign), divisor


@dataclass(frozen=True)
class _TaskArithmetic:
    consensus: bool
    sparsify: sparsifiers.Sparsifier | None

    def passes(self, params: Resolved, shape: tuple[int, ...]) -> list[Pass]:
        return sparsifiers.sparsifier_passes(self.sparsify, params, shape)

    def merge(self, piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
        assert piece.base is not None
        weights = params.values("weight")
        scales = stats.get("scale", [1.0] * len(weights))
        terms = sparsifiers.sparsified(self.sparsify, piece, params, stats, [w * s for w, s in zip(weights, scales)])
        if self.consensus:
            mixed, divisor = _elected_sum(terms, [1.0] * len(terms), weights)
            divisor.masked_fill_(divisor == 0, 1)
        else:
            mixed = terms[0]
            for term in terms[1:]:
                mixed += term
            total = sum(weights)
            divisor = torch.tensor(1.0 if abs(total) < 1e-8 else total)
        if params.shared["normalize"]:
            mixed /= divisor
        if params.shared["lambda"] != 1:
            mixed *= params.shared["lambda"]
        return mixed.add_(piece.base)

    def kernel(self, whole_rows: bool = False) -> TensorKernel:
        if whole_rows:  # DELLA ranks within rows, and a vector is one row
            return TensorKernel(merge=self.merge, passes=self.passes, whole=_is_vector)
        return TensorKernel(merge=self.merge, passes=self.passes)


def _is_vector(params: Resolved, shape: tuple[int, ...]) -> bool:
    return len(shape) < 2


#: Task arithmetic (Ilharco et al. 2023, arXiv 2212.04089): ``θ_base + λ Σ wᵢ δᵢ``.
task_arithmetic = _TaskArithmetic(False, None).kernel()
#: TIES (Yadav et al. 2023, arXiv 2306.01708): trim each δ to its top-``density`` magnitudes, elect signs, disjoint mean.
ties = _TaskArithmetic(True, sparsifiers.magnitude).kernel()
#: DARE with TIES' sign election (Yu et al. 2024, arXiv 2311.03099): drop entries at random, rescale, elect signs.
dare_ties = _TaskArithmetic(True, sparsifiers.random).kernel()
#: DARE (Yu et al. 2024): drop each entry with probability ``1 − density``, rescale to the L1 norm, add.
dare_linear = _TaskArithmetic(False, sparsifiers.random).kernel()
#: Model breadcrumbs (Davari & Belilovsky 2023, arXiv 2312.06795): drop the largest ``gamma`` and the smallest, add.
breadcrumbs = _TaskArithmetic(False, sparsifiers.magnitude_outliers).kernel()
#: Breadcrumbs with TIES' sign election.
breadcrumbs_ties = _TaskArithmetic(True, sparsifiers.magnitude_outliers).kernel()
#: DELLA (Deep et al. 2024, arXiv 2406.11617): drop at random, larger magnitudes (by rank in their row) kept more often.
della = _TaskArithmetic(True, sparsifiers.della_magprune).kernel(whole_rows=True)
#: DELLA without sign election.
della_linear = _TaskArithmetic(False, sparsifiers.della_magprune).kernel(whole_rows=True)


def _variance(piece: TensorSlice, params: Resolved, stats: Stats) -> list[torch.Tensor]:
    deltas = piece.deltas()
    mean = sum(deltas[1:], deltas[0].clone()) / len(deltas)
    return [sum(((d - mean) ** 2 for d in deltas), torch.zeros_like(mean)) / len(deltas)]


def _topk_bounds(key: int, numel: int, zeros: int, params: Resolved) -> list[int]:
    density = params.shared["select_topk"]
    return [0 if density <= 0 else numel if density >= 1 else int((numel - zeros) * density)]


def _sce_selected(piece: TensorSlice, params: Resolved, stats: Stats) -> list[torch.Tensor]:
    deltas = piece.deltas()
    if params.shared["select_topk"] >= 1:
        return deltas
    (kept,) = ranked_below("topk", stats, piece, 0, _variance(piece, params, stats)[0])
    return [delta * kept for delta in deltas]


def _sce_passes(params: Resolved, shape: tuple[int, ...]) -> list[Pass]:
    passes = rank_passes("topk", _variance, _topk_bounds) if params.shared["select_topk"] < 1 else []

    def squares(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
        return torch.stack([delta.square().sum(dtype=torch.float64) for delta in _sce_selected(piece, params, stats)])

    def weights(total: torch.Tensor, params: Resolved, stats: Stats, shape: tuple[int, ...]) -> None:
        numel = 1
        for size in shape:
            numel *= size
        means = total / numel
        stats["weights"] = (
            torch.full_like(means, 1 / len(means)) if abs(float(means.sum())) < 1e-6 else means / means.sum()
        ).tolist()

    return [*passes, Pass(squares, weights)]


def _sce_merge(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
    assert piece.base is not None
    selected = _sce_selected(piece, params, stats)
    merged, total = _elected_sum(selected, stats["weights"], stats["weights"])
    return merged.div_(total.clamp_(min=1e-6)).add_(piece.base)


#: SCE (Wan et al. 2024, FuseChat, arXiv 2408.07990): Select the entries whose task vectors vary most across the
#: inputs (top ``select_topk``), Calculate each input's weight as its mean squared task vector (normalised),
#: Erase entries against the elected sign; ``θ_base + Σ wᵢmᵢδᵢ / Σ wᵢmᵢ``.
sce = TensorKernel(merge=_sce_merge, passes=_sce_passes)
