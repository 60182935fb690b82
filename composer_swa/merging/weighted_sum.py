"""The one arithmetic of every offline merge: ``Σ wₖ·θₖ`` in fp32, each term rounded on its own.

Every merge in this package (the streamed checkpoint average, greedy soups and SoCE scoring their
soups in memory) sums through :func:`weighted_sum`, and
:mod:`~composer_swa.merging.numpy_average` repeats it rounding for rounding, so a soup scored in
memory is the soup written to disk, and the torch-free ``swa-average`` writes the torch path's bytes.

Why this is not the training kernel (:class:`~composer_swa.averaging.FlatAverage`): the kernel keeps
one running average of tensors it holds by reference and moves it toward them,
``average += w·(θ − average)`` (``lerp``), which is what SWA and EMA need between steps. A merge
instead knows all its inputs and their weights at once, and those weights need not be a running
mean's: ``--no-normalize`` weights may sum to anything or be negative (task-arithmetic style), and
an input may weigh zero. Written as interpolations, such a sum divides by partial sums of the
weights (which can be zero) and takes ``lerp``'s rounding, which on CPU fuses a multiply-add that
NumPy cannot reproduce, so the torch-free path could no longer write the same bytes (the tests in
``tests/merging/test_numpy_average.py`` compare them byte for byte). So a merge is a plain sum:
each input cast to fp32, multiplied by its fp32 weight, then added to the accumulator, with no fused
multiply-add; zero weights are left out (``0·inf`` would be NaN; see
:func:`~composer_swa.merging.recipes.scaled_weights`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["weighted_sum"]


def weighted_sum(terms: Iterable[tuple[torch.Tensor, float]], out: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """``out = Σ weight·tensor`` over ``terms``, in fp32, in order; ``out`` is zero when there is no term.

    Args:
        terms: ``(tensor, weight)`` pairs; each tensor (any floating dtype, ``out``'s shape) may be
            produced lazily, and is read only until the next one is.
        out: The fp32 accumulator.
        scratch: An fp32 buffer of ``out``'s shape for each weighted term before it is added
            (may be ``out`` itself when there is at most one term).

    Returns:
        ``out``.

    Example:
        >>> out, scratch = torch.empty(2), torch.empty(2)
        >>> weighted_sum([(torch.tensor([1.0, 2.0]), 0.25), (torch.tensor([3.0, 6.0]), 0.75)], out, scratch).tolist()
        [2.5, 5.0]
    """
    first = True
    for tensor, weight in terms:
        target = out if first else scratch
        target.copy_(tensor)
        target.mul_(weight)
        if not first:
            out.add_(scratch)
        first = False
    if first:
        out.zero_()
    return out
