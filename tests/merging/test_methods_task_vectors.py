"""Task-vector methods against NumPy implementations of mergekit's generalised task arithmetic; random ones with matched masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from composer_swa.merging.methods import sparsify
from composer_swa.merging.methods.kernel import Resolved, TensorSlice
from tests.merging.method_helpers import DTYPES, SHAPES, as_numpy, merge, models, slicing, tolerance

__all__ = ["slicing"]


def top_k(delta: np.ndarray, density: float) -> np.ndarray:
    """TIES' trim: the max(1, ⌊d·n⌋) largest magnitudes of the whole tensor."""
    if density >= 1:
        return np.ones(delta.shape, bool)
    order = np.argsort(-np.abs(delta).ravel(), kind="stable")
    keep = np.zeros(delta.size, bool)
    keep[order[: max(1, int(density * delta.size))]] = True
    return keep.reshape(delta.shape)


def band(delta: np.ndarray, density: float, gamma: float) -> np.ndarray:
    """Breadcrumbs: drop the ⌊γ·n⌋ largest, keep the ⌊d·n⌋ next."""
    n = delta.size
    keep_count, top = int(density * n), int(gamma * n)
    bottom = max(0, n - keep_count - top)
    order = np.argsort(np.abs(delta).ravel(), kind="stable")
    keep = np.zeros(n, bool)
    keep[order[bottom : bottom + keep_count]] = True
    return keep.reshape(delta.shape)


def combine(base: np.ndarray, deltas: list[np.ndarray], weights: list[float], consensus: bool, normalize: bool,
            lam: float = 1.0) -> np.ndarray:  # fmt: skip
    """Steps 2–4 of the generalised formula: weigh, (elect signs), sum, normalise, scale, add to the base."""
    terms = [w * d for w, d in zip(weights, deltas)]
    if consensus:
        elected = np.where(sum(terms) >= 0, 1.0, -1.0)
        masks = [np.sign(t) == elected for t in terms]
        mixed = sum(t * m for t, m in zip(terms, masks))
        divisor = sum(w * m for w, m in zip(weights, masks))
        divisor = np.where(divisor == 0, 1, divisor)
    else:
        mixed = sum(terms)
        divisor = sum(weights) if abs(sum(weights)) >= 1e-8 else 1.0
    return base + lam * (mixed / divisor if normalize else mixed)


def rescaled(delta: np.ndarray, keep: np.ndarray) -> np.ndarray:
    before, after = np.abs(delta).sum(), np.abs(delta * keep).sum()
    return delta * keep * (before / after if before >= 1e-7 and after >= 1e-7 else 1.0)


WEIGHTS = [0.5, 1.0, 0.8]
DENSITIES = [0.3, 0.5, 1.0]


def per_input(**extra: Any) -> list[dict[str, Any] | None]:
    return [None] + [{"weight": w, "density": d, **extra} for w, d in zip(WEIGHTS, DENSITIES)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("method", "consensus", "normalize"), [("task_arithmetic", False, False), ("ties", True, True)])
def test_task_arithmetic_and_ties(tmp_path: Path, dtype: torch.dtype, method: str, consensus: bool, normalize: bool) -> None:
    states = models(4, dtype)
    out = merge(tmp_path, method, states, base=0, settings={"lambda": 0.7}, input_settings=per_input())

    for name in SHAPES:
        base, *tuned = as_numpy(states, name)
        deltas = [x - base for x in tuned]
        if method == "ties":
            deltas = [d * top_k(d, density) for d, density in zip(deltas, DENSITIES)]
        np.testing.assert_allclose(out[name], combine(base, deltas, WEIGHTS, consensus, normalize, 0.7), **tolerance(dtype))


def test_ties_with_rescale_and_normalize_off(tmp_path: Path, slicing: str) -> None:
    states = models(4)
    out = merge(tmp_path, "ties", states, base=0, settings={"rescale": True, "normalize": False}, input_settings=per_input())

    for name in SHAPES:
        base, *tuned = as_numpy(states, name)
        deltas = [rescaled(x - base, top_k(x - base, d)) for x, d in zip(tuned, DENSITIES)]
        np.testing.assert_allclose(out[name], combine(base, deltas, WEIGHTS, True, False), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(("method", "consensus"), [("breadcrumbs", False), ("breadcrumbs_ties", True)])
def test_breadcrumbs(tmp_path: Path, method: str, consensus: bool, slicing: str) -> None:
    states = models(4)
    out = merge(tmp_path, method, states, base=0, input_settings=per_input(gamma=0.1))

    for name in SHAPES:
        base, *tuned = as_numpy(states, name)
        deltas = [(x - base) * (band(x - base, d, 0.1) if d < 1 else 1) for x, d in zip(tuned, DENSITIES)]
        np.testing.assert_allclose(out[name], combine(base, deltas, WEIGHTS, consensus, False), rtol=2e-5, atol=2e-5)


@pytest.fixture
def uniforms(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, int], np.ndarray]:
    """Matched masks: the engine's uniform draws replaced by NumPy's, one array per (tensor, input), sliced by row."""
    drawn: dict[tuple[str, int], np.ndarray] = {}
    rng = np.random.default_rng(7)

    def fake(piece: TensorSlice, params: Resolved, entry: int, shape: Any = None) -> torch.Tensor:
        full = drawn.setdefault((piece.name, entry), rng.random(piece.shape))
        rows = full[piece.start : piece.start + piece.rows]
        return torch.from_numpy(rows.reshape(shape or piece.tensors[entry].shape).astype(np.float32))

    monkeypatch.setattr(sparsify, "random_uniform", fake)
    return drawn


@pytest.mark.parametrize(("method", "consensus"), [("dare_linear", False), ("dare_ties", True)])
def test_dare_with_matched_masks(tmp_path: Path, method: str, consensus: bool, uniforms: Any, slicing: str) -> None:
    states = models(4)
    out = merge(tmp_path, method, states, base=0, input_settings=per_input())

    for name in SHAPES:
        base, *tuned = as_numpy(states, name)
        deltas = [
            rescaled(x - base, uniforms[(name, k)] < d) if d < 1 else x - base for k, (x, d) in enumerate(zip(tuned, DENSITIES))
        ]
        np.testing.assert_allclose(out[name], combine(base, deltas, WEIGHTS, consensus, False), rtol=2e-5, atol=2e-5)


def della_keep(delta: np.ndarray, uniform: np.ndarray, density: float, epsilon: float) -> np.ndarray:
    """DELLA's MagPrune: within each row, rank r (0 smallest) kept with probability d − ε + 2ε·r/(m − 1)."""
    rows = delta if delta.ndim >= 2 else delta[None]
    ranks = np.argsort(np.argsort(np.abs(rows), axis=1, kind="stable"), axis=1, kind="stable")
    probability = density - epsilon + ranks / (rows.shape[1] - 1) * 2 * epsilon
    return (uniform.reshape(rows.shape) < probability).reshape(delta.shape)


@pytest.mark.parametrize(("method", "consensus", "normalize"), [("della", True, True), ("della_linear", False, False)])
def test_della_with_matched_masks(
    tmp_path: Path, method: str, consensus: bool, normalize: bool, uniforms: Any, slicing: str
) -> None:
    states = models(4)
    out = merge(tmp_path, method, states, base=0, input_settings=per_input(epsilon=0.1))

    for name in SHAPES:
        base, *tuned = as_numpy(states, name)
        deltas = [rescaled(x - base, della_keep(x - base, uniforms[(name, k)], d, 0.1)) if d < 1 else x - base
                  for k, (x, d) in enumerate(zip(tuned, DENSITIES))]  # fmt: skip
        np.testing.assert_allclose(out[name], combine(base, deltas, WEIGHTS, consensus, normalize), rtol=2e-5, atol=2e-5)


def test_dare_is_reproducible_by_seed_and_keeps_density_of_entries(tmp_path: Path) -> None:
    states = models(2)
    settings = {"weight": 1.0, "density": 0.4}
    first = merge(tmp_path, "dare_linear", states, base=0, settings=settings, seed=3)
    again = merge(tmp_path, "dare_linear", states, base=0, settings=settings, seed=3)
    other = merge(tmp_path, "dare_linear", states, base=0, settings=settings, seed=4)

    assert all(np.array_equal(first[n], again[n]) for n in SHAPES)
    assert not np.array_equal(first["layers.0.w"], other["layers.0.w"])
    base, tuned = as_numpy(states, "layers.0.w")
    kept = first["layers.0.w"] != base
    assert 0.15 < kept.mean() < 0.65  # 35 entries, each kept with probability 0.4
    np.testing.assert_allclose(first["layers.0.w"] - base, rescaled(tuned - base, kept), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("select_topk", [1.0, 0.4])
def test_sce(tmp_path: Path, dtype: torch.dtype, select_topk: float) -> None:
    states = models(4, dtype)
    out = merge(tmp_path, "sce", states, base=0, settings={"select_topk": select_topk})

    for name in SHAPES:
        base, *tuned = as_numpy(states, name)
        deltas = np.stack([x - base for x in tuned])
        if select_topk < 1:
            variance = deltas.var(axis=0)
            deltas = deltas * top_k(variance, select_topk * np.count_nonzero(variance) / variance.size)
        weights = (deltas**2).reshape(len(deltas), -1).mean(axis=1)
        weights = weights / weights.sum() if abs(weights.sum()) >= 1e-6 else np.full(len(deltas), 1 / len(deltas))
        elected = np.where(deltas.sum(axis=0) >= 0, 1.0, -1.0)
        kept = (np.sign(deltas) == elected) * weights.reshape(-1, *[1] * (deltas.ndim - 1))
        expected = base + (deltas * kept).sum(axis=0) / np.maximum(kept.sum(axis=0), 1e-6)
        np.testing.assert_allclose(out[name], expected, **tolerance(dtype))


def test_ties_and_sce_rank_whole_tensors_read_in_slices(tmp_path: Path, slicing: str) -> None:
    """The top-k threshold is exact over the whole tensor, found by counting bits over its slices."""
    states = models(4)
    ties = merge(tmp_path, "ties", states, base=0, input_settings=per_input())
    sce = merge(tmp_path, "sce", states, base=0, settings={"select_topk": 0.5})

    for name in SHAPES:
        base, *tuned = as_numpy(states, name)
        deltas = [(x - base) * top_k(x - base, d) for x, d in zip(tuned, DENSITIES)]
        np.testing.assert_allclose(ties[name], combine(base, deltas, WEIGHTS, True, True), rtol=2e-5, atol=2e-5)
        variance = np.stack([x - base for x in tuned]).var(axis=0)
        kept = top_k(variance, 0.5)
        assert kept.sum() == int(variance.size * 0.5)
        changed = np.any(np.stack([(x - base) for x in tuned]) * kept != 0, axis=0)
        assert np.array_equal(sce[name] != base, changed)  # exactly the selected entries moved
