"""Weights for checkpoint averaging: from a schedule, or per tensor by name and layer index.

Schedule-derived weights for checkpoints saved along one run at a constant LR, oldest first:

- :func:`last_k_weights` is LAWA (Kaddour 2022): the uniform mean of the last k checkpoints.
- :func:`decay_emulating_weights` merges checkpoints so the result matches a run whose LR had
  decayed over the same window (the idea behind Megatron's checkpoint merging and WSM). With a
  constant LR η the checkpoints are ``θ_i = θ_0 − η Σ_{t<t_i} g_t``, so ``Σ c_i θ_i`` applies each
  update ``g_t`` with LR ``η G(t)``, where ``G(t)`` is the weight of the checkpoints after ``t``.
  Choosing ``G`` on the i-th segment as ``decay((i−1)/n)`` gives ``c_i = decay((i−1)/n) − decay(i/n)``
  (the last takes what is left). Linear decay gives the uniform mean; ``1−√x`` falls fastest at
  the start of the window, so the earliest checkpoint weighs most.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence

__all__ = [
    "DECAY_SHAPES",
    "TensorWeights",
    "decay_emulating_weights",
    "last_k_weights",
    "layer_index",
    "layerwise_weights",
    "normalize_weights",
]

#: Weights over the inputs: one list for every tensor, or a function of the tensor's name.
TensorWeights = Sequence[float] | Callable[[str], Sequence[float]]

DECAY_SHAPES: dict[str, Callable[[float], float]] = {"linear": lambda x: 1.0 - x, "1-sqrt": lambda x: 1.0 - math.sqrt(x)}
_LAYER = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")


def last_k_weights(count: int, k: int) -> list[float]:
    """Uniform weights over the last ``k`` of ``count`` checkpoints (oldest first), zero before.

    Example:
        >>> last_k_weights(5, 2)
        [0.0, 0.0, 0.0, 0.5, 0.5]
    """
    if not 1 <= k <= count:
        raise ValueError(f"last k must lie in [1, {count}] for {count} inputs, got {k!r}")
    return [0.0] * (count - k) + [1.0 / k] * k


def decay_emulating_weights(count: int, shape: str = "1-sqrt") -> list[float]:
    """Weights over ``count`` constant-LR checkpoints (oldest first) that emulate an LR decay of ``shape``.

    Example:
        >>> decay_emulating_weights(4, "linear")
        [0.25, 0.25, 0.25, 0.25]
        >>> [round(w, 4) for w in decay_emulating_weights(4, "1-sqrt")]
        [0.5, 0.2071, 0.1589, 0.134]
    """
    if shape not in DECAY_SHAPES:
        raise ValueError(f"decay shape must be one of {sorted(DECAY_SHAPES)}, got {shape!r}")
    if count < 1:
        raise ValueError(f"need at least one checkpoint, got {count!r}")
    decay = DECAY_SHAPES[shape]
    weights = [decay((i - 1) / count) - decay(i / count) for i in range(1, count)]
    return [*weights, decay((count - 1) / count)]


def layer_index(name: str) -> int | None:
    """The layer a tensor belongs to: the first all-digit part of its name (``layers.3.mlp.weight`` → 3)."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def _interpolate(anchors: Sequence[float], position: float) -> float:
    """Piecewise-linear through ``anchors`` spread evenly over [0, 1], as mergekit's gradients."""
    if len(anchors) == 1:
        return float(anchors[0])
    scaled = position * (len(anchors) - 1)
    low = min(int(scaled), len(anchors) - 2)
    return float(anchors[low] + (anchors[low + 1] - anchors[low]) * (scaled - low))


def layerwise_weights(
    names: Sequence[str],
    count: int,
    default: Sequence[float],
    rules: Sequence[tuple[str, Sequence[float]]] = (),
    gradients: Sequence[Sequence[float]] | None = None,
) -> Callable[[str], list[float]]:
    """Per-tensor weights: the first matching ``(regex, weights)`` rule, else a gradient over layers, else ``default``.

    ``gradients`` holds one list of anchor values per input; a tensor of layer ``l`` of ``L`` takes
    each input's anchors interpolated at ``l / (L − 1)``. Weights are normalized per tensor.

    Example:
        >>> weigh = layerwise_weights(["h.0.w", "h.2.w", "head.w"], 2, [1, 1], gradients=[[1, 0], [0, 1]])
        >>> weigh("h.0.w"), weigh("h.2.w"), weigh("head.w")
        ([1.0, 0.0], [0.0, 1.0], [0.5, 0.5])
    """
    compiled = []
    for pattern, weights in rules:
        try:
            compiled.append((re.compile(pattern), list(weights)))
        except re.error as error:
            raise ValueError(f"layer-wise rule {pattern!r} is not a valid regular expression: {error}") from None
    for label, values in [("default", default), *((f"rule {p!r}", w) for p, w in rules)]:
        if len(values) != count:
            raise ValueError(f"layer-wise {label} has {len(values)} weights for {count} inputs")
    if gradients is not None and len(gradients) != count:
        raise ValueError(f"layer-wise gradients: give one list of anchors per input ({count}), got {len(gradients)}")
    indices = [index for name in names if (index := layer_index(name)) is not None]
    last_layer = max(indices, default=0)

    def weigh(name: str) -> list[float]:
        values: Sequence[float] = default
        for pattern, weights in compiled:
            if pattern.search(name):
                values = weights
                break
        else:
            index = layer_index(name)
            if gradients is not None and index is not None:
                position = index / last_layer if last_layer else 0.0
                values = [_interpolate(anchors, position) for anchors in gradients]
        total = sum(values)
        if total == 0:
            raise ValueError(f"layer-wise weights for {name!r} sum to 0: {list(values)!r}")
        return [float(v) / total for v in values]

    return weigh


def weights_for(weights: TensorWeights | None, name: str, count: int) -> list[float]:
    """The weights of tensor ``name`` over ``count`` inputs (``None``: uniform), checked to be one per input."""
    if weights is None:
        return [1.0 / count] * count
    values = list(weights(name) if callable(weights) else weights)
    if len(values) != count:
        raise ValueError(f"got {len(values)} weights for {count} inputs (tensor {name!r}); give one weight per input")
    return values


def scaled_weights(weights: Sequence[float], holders: Sequence[int], count: int) -> list[tuple[int, float]]:
    """``(input, weight)`` for the inputs that hold a tensor and weigh in: with --union a key some inputs
    lack is averaged over those that have it, its weights rescaled to the same total. An input of
    weight zero is left out, so that its inf or NaN (a diverged candidate) cannot reach the sum.

    Example:
        >>> scaled_weights([0.0, 0.25, 0.75], [0, 1, 2], 3)
        [(1, 0.25), (2, 0.75)]
        >>> scaled_weights([0.5, 0.25, 0.25], [0, 1], 3)  # input 2 lacks the tensor
        [(0, 0.6666666666666666), (1, 0.3333333333333333)]
    """
    total = sum(weights[k] for k in holders)
    scale = 1.0 if len(holders) == count or total == 0 else sum(weights) / total
    return [(k, weights[k] * scale) for k in holders if weights[k] * scale != 0]


def normalize_weights(weights: Sequence[float], normalize: bool = True) -> list[float]:
    """Weights divided by their sum; without ``normalize``, as given, with a warning when unusual.

    Example:
        >>> normalize_weights([1, 1, 2])
        [0.25, 0.25, 0.5]
    """
    values = [float(w) for w in weights]
    if not values or any(not math.isfinite(w) for w in values):
        raise ValueError(f"weights must be finite numbers, got {list(weights)!r}")
    if normalize:
        total = sum(values)
        if total == 0:
            raise ValueError(f"weights sum to 0 and cannot be normalized, got {values!r}")
        return [w / total for w in values]
    if any(w < 0 for w in values):
        warnings.warn(f"negative weights {values!r}: the result extrapolates beyond the inputs", stacklevel=2)
    if not math.isclose(sum(values), 1.0, rel_tol=1e-6):
        warnings.warn(f"weights sum to {sum(values):g}, not 1: the result is scaled by that factor", stacklevel=2)
    return values
