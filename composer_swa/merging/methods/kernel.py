"""What a per-tensor merge method is made of: a merge of slices of rows, and the passes that gather what it needs first.

The engine (:func:`~composer_swa.merging.tensor_merge.merge_tensors`) hands a method each output
tensor as :class:`TensorSlice` objects: rows ``[start, start + rows)`` along dim 0 of every input's
value of that tensor (and of the base model's), cast to fp32. A tensor small enough is one slice.
A method whose formula needs statistics of the whole tensor (norms and angles for SLERP and Model
Stock, a top-k threshold for TIES, an L1 norm for DARE's rescale) declares :class:`Pass` objects:
each runs over every slice first, its per-slice results are summed, and its ``finish`` leaves what
the merge needs in ``stats``. So memory holds a few slices, never a whole tensor. Most such
statistics are Gram matrices of the inputs (:func:`gram_pass`): every spherical method's result is a
linear combination of its inputs whose coefficients follow from their inner products.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["Pass", "Resolved", "TensorKernel", "TensorSlice", "combine", "gram", "gram_pass", "random_uniform"]

Stats = dict[str, Any]
_GRAM_ELEMENTS = 1 << 18  # fp32 dot products this long, summed in float64


@dataclass
class TensorSlice:
    """Rows ``[start, start + rows)`` of one output tensor's inputs, in fp32.

    Attributes:
        name: The output tensor's name (random masks are seeded by it).
        shape: The whole tensor's shape (a 0-d tensor reads as ``(1,)``).
        start: The first row of the slice.
        tensors: The slice of each input other than the base (every input, for methods without a base):
            fresh fp32 copies, which passes leave as they are and the merge may overwrite.
        base: The base model's slice, for methods that read one.
        inputs: Each of ``tensors``' input index.
        sources: Each of ``tensors``' tensor name in its input.
    """

    name: str
    shape: tuple[int, ...]
    start: int
    tensors: list[torch.Tensor]
    base: torch.Tensor | None = None
    inputs: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return (self.tensors[0] if self.tensors else self.base).shape[0]  # type: ignore[union-attr]

    @property
    def numel(self) -> int:
        """Elements of the whole tensor."""
        return math.prod(self.shape)

    def deltas(self) -> list[torch.Tensor]:
        """Each input minus the base: task vectors (Ilharco et al. 2023)."""
        assert self.base is not None
        return [tensor - self.base for tensor in self.tensors]


@dataclass
class Resolved:
    """One tensor's parameter values: shared ones, one dict per input (as :attr:`TensorSlice.tensors`), and more."""

    shared: dict[str, Any]
    each: list[dict[str, Any]]
    seed: int = 0
    context: Any = None  # what a data-aware method prepared (Fisher, Gram matrices)

    def values(self, name: str) -> list[Any]:
        return [entry[name] for entry in self.each]


@dataclass(frozen=True)
class Pass:
    """A first pass over the slices: ``accumulate`` per slice (summed), then ``finish(total, params, stats, shape)``."""

    accumulate: Callable[[TensorSlice, Resolved, Stats], torch.Tensor]
    finish: Callable[[torch.Tensor, Resolved, Stats, tuple[int, ...]], None]


def _no_passes(params: Resolved, shape: tuple[int, ...]) -> Sequence[Pass]:
    return ()


def _never(params: Resolved, shape: tuple[int, ...]) -> bool:
    return False


@dataclass(frozen=True)
class TensorKernel:
    """A per-tensor method: ``merge(slice, params, stats) -> rows``, after ``passes(params, shape)``.

    Attributes:
        whole: ``(params, shape) -> bool``: the tensor must be one slice (its formula couples all
            rows and has no first-pass form).
        prepare: ``(options, inputs, plans) -> context``: runs once before any tensor (data-aware
            methods compute their per-input statistics here).
    """

    merge: Callable[[TensorSlice, Resolved, Stats], torch.Tensor]
    passes: Callable[[Resolved, tuple[int, ...]], Sequence[Pass]] = _no_passes
    whole: Callable[[Resolved, tuple[int, ...]], bool] = _never
    prepare: Callable[..., Any] | None = None


def gram(vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``G[i, j] = ⟨vᵢ, vⱼ⟩``: fp32 dot products over blocks of 256K elements, summed in float64.

    A BLAS dot in fp32 (as mergekit's NumPy products) is within about 1e-6 of the fp64 product,
    exact enough to take angles, and a tenth of the cost of converting the inputs to fp64.

    Example:
        >>> gram([torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0])]).tolist()
        [[25.0, 3.0], [3.0, 1.0]]
    """
    flat = [vector.reshape(-1) for vector in vectors]
    total = torch.zeros(len(flat), len(flat), dtype=torch.float64)
    for start in range(0, flat[0].numel(), _GRAM_ELEMENTS):
        block = [vector[start : start + _GRAM_ELEMENTS] for vector in flat]
        for i, left in enumerate(block):
            for j in range(i, len(block)):
                total[i, j] += float(torch.dot(left, block[j]))
    return total.triu() + total.triu(1).T


def gram_pass(
    vectors: Callable[[TensorSlice], Sequence[torch.Tensor]], finish: Callable[[torch.Tensor, Resolved, Stats], None]
) -> Pass:
    """A pass that sums the Gram matrix of ``vectors(slice)`` over the slices, then calls ``finish(G, params, stats)``."""
    return Pass(
        lambda piece, params, stats: gram(vectors(piece)), lambda total, params, stats, shape: finish(total, params, stats)
    )


def combine(coefficients: Sequence[float], vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``Σ cᵢ vᵢ`` in fp32.

    Example:
        >>> combine([0.5, 2.0], [torch.ones(2), torch.ones(2)]).tolist()
        [2.5, 2.5]
    """
    out = vectors[0] * float(coefficients[0])
    for coefficient, vector in zip(coefficients[1:], vectors[1:]):
        out.add_(vector, alpha=float(coefficient))
    return out


def random_uniform(piece: TensorSlice, params: Resolved, entry: int, shape: torch.Size | None = None) -> torch.Tensor:
    """Uniform [0, 1) fp32 draws for one input's slice, seeded by (seed, tensor, input, first row): the same every run.

    NumPy's PCG64 draws fp32 uniforms at about half the cost of torch's CPU generator.
    """
    key = zlib.crc32(f"{params.seed}:{piece.name}:{entry}:{piece.start}".encode())
    draws = np.random.Generator(np.random.PCG64(key)).random(tuple(shape or piece.tensors[entry].shape), dtype=np.float32)
    return torch.from_numpy(draws)
