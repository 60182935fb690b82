"""Exact top-k by magnitude over a whole tensor, found in two passes over its slices (a radix select).

TIES keeps the ``k`` largest ``|δ|`` of the whole tensor, breadcrumbs a band of ranks, SCE the
``k`` largest variances: a sort of the whole tensor in mergekit. Here, since a non-negative fp32's
bits order as integers, a first pass counts the top 16 bits of every magnitude (65,536 bins), which
names the bin that holds the ``R``-th largest; a second counts the low 16 bits within that bin,
which names its exact value. An element then ranks above ``R`` when its bits are greater, or equal
and among the first (in flat order) of the equal ones still needed: ties are broken by position, so
exactly ``R`` elements rank above ``R``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from composer_swa.merging.methods.kernel import Pass, Resolved, Stats, TensorSlice

__all__ = ["rank_passes", "ranked_below"]

_BINS = 1 << 16
# keys(slice, params, stats) -> one magnitude tensor per ranked key (fp32, non-negative).
Keys = Callable[[TensorSlice, Resolved, Stats], Sequence[torch.Tensor]]
# bounds(key, numel, zeros, params) -> the ranks R for which "rank < R" is asked.
Bounds = Callable[[int, int, int, Resolved], Sequence[int]]


def _bits(magnitude: torch.Tensor) -> torch.Tensor:
    return magnitude.contiguous().view(torch.int32)


def _locate(counts: torch.Tensor, rank: int) -> tuple[int, int]:
    """The bin holding the element of descending rank ``rank`` (0-based), and how many lie in higher bins."""
    from_top = torch.cumsum(counts.flip(0), 0)
    position = int(torch.searchsorted(from_top, torch.tensor([float(rank)], dtype=torch.float64), right=True))
    above = int(from_top[position - 1]) if position > 0 else 0
    return counts.numel() - 1 - position, above


def _sorted_thresholds(magnitudes: Sequence[torch.Tensor], bounds: Bounds, params: Resolved) -> list[list[tuple[int, int, int]]]:
    """The thresholds straight from a sort, for a tensor that is one slice (small: counting bins would cost more)."""
    found = []
    for key, magnitude in enumerate(magnitudes):
        bits = _bits(magnitude).reshape(-1)
        ordered = torch.sort(bits, descending=True).values
        row = []
        for rank in bounds(key, bits.numel(), int((bits == 0).sum()), params):
            if rank <= 0 or rank >= bits.numel():
                row.append((rank, -1, 0))
            else:
                threshold = int(ordered[rank - 1])
                row.append((rank, threshold, rank - int((bits > threshold).sum())))
        found.append(row)
    return found


def rank_passes(label: str, keys: Keys, bounds: Bounds) -> list[Pass]:
    """The two passes that leave, in ``stats[label]``, each key's thresholds for its ranks from ``bounds``."""
    direct = f"{label}.sorted"

    def high(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
        if piece.start == 0 and piece.rows == piece.shape[0]:
            stats[label], stats[direct] = _sorted_thresholds(keys(piece, params, stats), bounds, params), True
            return torch.zeros(1)
        rows = []
        for magnitude in keys(piece, params, stats):
            bits = _bits(magnitude)
            counts = torch.bincount((bits >> 16).reshape(-1), minlength=_BINS).to(torch.float64)
            zeros = bits.numel() - torch.count_nonzero(bits)
            rows.append(torch.cat([counts, zeros.reshape(1).to(torch.float64)]))
        return torch.stack(rows)

    def found_high(total: torch.Tensor, params: Resolved, stats: Stats, shape: tuple[int, ...]) -> None:
        if stats.get(direct):
            return
        numel = 1
        for size in shape:
            numel *= size
        found = []
        for key, row in enumerate(total):
            wanted = []
            for rank in bounds(key, numel, int(row[-1]), params):
                if rank <= 0 or rank >= numel:
                    wanted.append((rank, -1, 0))  # no element, or every element, ranks above it
                else:
                    bin_, above = _locate(row[:-1], rank - 1)
                    wanted.append((rank, bin_, rank - above))
            found.append(wanted)
        stats[label] = found

    def low(piece: TensorSlice, params: Resolved, stats: Stats) -> torch.Tensor:
        if stats.get(direct):
            return torch.zeros(1)
        width = max(len(wanted) for wanted in stats[label])
        rows = torch.zeros(len(stats[label]), max(width, 1), _BINS, dtype=torch.float64)
        for key, magnitude in enumerate(keys(piece, params, stats)):
            bits = _bits(magnitude).reshape(-1)
            for index, (_, bin_, _) in enumerate(stats[label][key]):
                if bin_ >= 0:
                    inside = bits[(bits >> 16) == bin_] & (_BINS - 1)
                    rows[key, index] = torch.bincount(inside, minlength=_BINS).to(torch.float64)
        return rows

    def found_low(total: torch.Tensor, params: Resolved, stats: Stats, shape: tuple[int, ...]) -> None:
        if stats.get(direct):
            return
        thresholds = []
        for key, wanted in enumerate(stats[label]):
            row = []
            for index, (rank, bin_, needed) in enumerate(wanted):
                if bin_ < 0:
                    row.append((rank, -1, 0))
                    continue
                low_bin, above = _locate(total[key, index], needed - 1)
                row.append((rank, (bin_ << 16) | low_bin, needed - above))
            thresholds.append(row)
        stats[label] = thresholds

    return [Pass(high, found_high), Pass(low, found_low)]


def ranked_below(label: str, stats: Stats, piece: TensorSlice, key: int, magnitude: torch.Tensor) -> list[torch.Tensor]:
    """For each rank ``R`` of ``key``: which elements of this slice rank above ``R`` (``rank < R``, 0-based).

    Slices must come in order; each pass that asks starts again at the first slice (``start == 0``).
    """
    seen = stats.setdefault(f"{label}.seen", {})
    bits = _bits(magnitude)
    masks = []
    for index, (rank, threshold, needed) in enumerate(stats[label][key]):
        if threshold < 0:
            masks.append(torch.full(bits.shape, rank > 0, dtype=torch.bool))
            continue
        equal = bits == threshold
        before = 0 if piece.start == 0 else seen.get((key, index), 0)
        count = int(equal.sum())
        seen[(key, index)] = before + count
        above = bits > threshold
        if count and before < needed:  # some of the equal ones rank above R: the first, in flat order
            order = torch.cumsum(equal.reshape(-1), 0).reshape(bits.shape) + before
            above |= equal & (order <= needed)
        masks.append(above)
    return masks
