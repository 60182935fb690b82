"""Which entries of a task vector survive: by magnitude (TIES), a band of magnitudes (breadcrumbs), at random
(DARE), at random by rank within a row (DELLA); and the L1 rescale that restores the vector's norm.

As mergekit's ``sparsify.py``: ``magnitude`` keeps the ``max(1, ⌊d·n⌋)`` largest ``|δ|`` of the whole
tensor; ``magnitude_outliers`` drops the ``⌊γ·n⌋`` largest and keeps the ``⌊d·n⌋`` next; ``random``
keeps each entry with probability ``d``; ``della_magprune`` keeps an entry of rank ``r`` (1 smallest
… ``m`` largest, within its row) with probability ``d − ε + 2ε·(r−1)/(m−1)``. With ``rescale`` the kept
entries are scaled by ``‖δ‖₁ / ‖mask·δ‖₁`` over the whole tensor (unless either is below 1e-7).
Whole-tensor ranks take two passes (:mod:`~composer_swa.merging.methods.ranks`), the rescale one more;
random masks are drawn per slice from a generator seeded by the seed, tensor, input and first row (the
same every run), once: the rescale pass keeps them, a bit per entry, for the merge.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from composer_swa.merging.methods.kernel import Pass, Resolved, Stats, TensorSlice, random_uniform
from composer_swa.merging.methods.ranks import rank_passes, ranked_below

__all__ = ["Sparsifier", "sparsified", "sparsifier_passes"]

# (slice, params, stats, entry, delta) -> which entries of delta are kept (bool), None for all of them.
Sparsifier = Callable[[TensorSlice, Resolved, Stats, int, torch.Tensor], torch.Tensor | None]


def _active(params: Resolved, entry: int) -> bool:
    return params.each[entry]["density"] < 1


def _magnitude_bounds(key: int, numel: int, zeros: int, params: Resolved) -> list[int]:
    density = params.each[key]["density"]
    return [0 if density <= 0 or numel == 0 else max(1, int(density * numel))]


def _outlier_bounds(key: int, numel: int, zeros: int, params: Resolved) -> list[int]:
    keep = int(params.each[key]["density"] * numel)
    top = int(params.each[key]["gamma"] * numel)
    bottom = max(0, numel - keep - top)
    return [numel - bottom - keep, numel - bottom]  # kept: descending ranks in [first, second)


def _magnitudes(piece: TensorSlice, params: Resolved, stats: Stats) -> list[torch.Tensor]:
    return [delta.abs() for delta in piece.deltas()]


def magnitude(piece: TensorSlice, params: Resolved, stats: Stats, entry: int, delta: torch.Tensor) -> torch.Tensor | None:
    if not _active(params, entry):
        return None
    (kept,) = ranked_below("ranks", stats, piece, entry, delta.abs())
    return kept


def magnitude_outliers(
    piece: TensorSlice, params: Resolved, stats: Stats, entry: int, delta: torch.Tensor
) -> torch.Tensor | None:  # fmt: skip
    if not _active(params, entry):
        return None
    low, high = ranked_below("ranks", stats, piece, entry, delta.abs())
    return high & ~low


def random(piece: TensorSlice, params: Resolved, stats: Stats, entry: int, delta: torch.Tensor) -> torch.Tensor | None:
    if not _active(params, entry):
        return None
    return random_uniform(piece, params, entry) < params.each[entry]["density"]


def della_magprune(
    piece: TensorSlice, params: Resolved, stats: Stats, entry: int, delta: torch.Tensor
) -> torch.Tensor | None:  # fmt: skip
    density, epsilon = params.each[entry]["density"], params.each[entry]["epsilon"]
    if density >= 1:
        return None
    if density <= 0:
        return torch.zeros(delta.shape, dtype=torch.bool)
    if density + epsilon >= 1 or density - epsilon <= 0:
        raise ValueError(f"della: density ± epsilon must lie in (0, 1), got density={density!r}, epsilon={epsilon!r}")
    rows = delta if delta.dim() >= 2 else delta.unsqueeze(0)
    ranks = torch.argsort(torch.argsort(rows.abs(), dim=1), dim=1).to(torch.float32)  # 0 = smallest in its row
    spread = max(rows.shape[1] - 1, 1)
    probabilities = (density - epsilon) + (ranks / spread).clamp(0, 1) * 2 * epsilon
    return (random_uniform(piece, params, entry, rows.shape) < probabilities).reshape(delta.shape)


_RANKED = {magnitude: _magnitude_bounds, magnitude_outliers: _outlier_bounds}


def _kept(
    sparsify: Sparsifier, piece: TensorSlice, params: Resolved, stats: Stats, entry: int, delta: torch.Tensor
) -> torch.Tensor | None:  # fmt: skip
    """The mask the rescale pass drew for this slice (packed to bits in ``stats``, a bit per entry), else a new one."""
    packed = stats.pop(f"kept:{entry}:{piece.start}", None)
    if packed is None:
        return sparsify(piece, params, stats, entry, delta)
    return torch.from_numpy(np.unpackbits(packed, count=delta.numel()).view(np.bool_)).reshape(delta.shape)


def sparsifier_passes(sparsify: Sparsifier | None, params: Resolved, shape: tuple[int, ...]) -> list[Pass]:
    """The passes ``sparsify`` needs before the merge: whole-tensor ranks, then the L1 rescale's norms.

    The rescale pass keeps each slice's mask, a bit per entry, for the merge: random masks are drawn
    once, and memory holds an eighth of a byte per entry of one tensor per input.
    """
    if sparsify is None or not any(params.each[k]["density"] < 1 for k in range(len(params.each))):
        return []
    passes = rank_passes("ranks", _magnitudes, _RANKED[sparsify]) if sparsify in _RANKED else []
    if params.shared["rescale"]:

        def norms(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
            sums = []
            for entry, delta in enumerate(piece.deltas()):
                kept = sparsify(piece, params, stats, entry, delta)
                before = delta.abs_().sum()  # fp32 within a slice (pairwise), fp64 across slices
                if kept is not None:
                    stats[f"kept:{entry}:{piece.start}"] = np.packbits(kept.numpy())
                    delta.mul_(kept)
                sums.append(torch.stack([before, before if kept is None else delta.sum()]).double())
            return torch.stack(sums)

        def scales(total: torch.Tensor, params: Resolved, stats: Stats, shape: tuple[int, ...]) -> None:
            stats["scale"] = [1.0 if before < 1e-7 or after < 1e-7 else float(before / after) for before, after in total]

        passes.append(Pass(norms, scales))
    return passes


def sparsified(
    sparsify: Sparsifier | None, piece: TensorSlice, params: Resolved, stats: Stats, factors: Sequence[float]
) -> list[torch.Tensor]:  # fmt: skip
    """Each input's task vector on this slice, sparsified and times its factor (weight × rescale): new tensors."""
    deltas = piece.deltas()
    for entry, delta in enumerate(deltas):
        kept = None if sparsify is None else _kept(sparsify, piece, params, stats, entry, delta)
        if kept is not None:
            delta.mul_(kept)
        if factors[entry] != 1:
            delta.mul_(factors[entry])
    return deltas
