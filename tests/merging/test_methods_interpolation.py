"""slerp, nuslerp, multislerp and karcher against NumPy implementations of their formulas (mergekit's docs and papers)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from composer_swa.merging.plan import positions
from tests.merging.method_helpers import DTYPES, SHAPES, as_numpy, merge, models, slicing, tolerance

__all__ = ["slicing"]


def slerp(t: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shoemake's SLERP over the flattened tensors; linear when nearly colinear (mergekit's 0.9995)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    dot = np.clip(np.sum((a / (na if na > 1e-8 else 1)) * (b / (nb if nb > 1e-8 else 1))), -1, 1)
    if abs(dot) > 0.9995:
        return (1 - t) * a + t * b
    omega = np.arccos(dot)
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def nuslerp(t: float, a: np.ndarray, b: np.ndarray, axis: int | None) -> np.ndarray:
    """SLERP along ``axis`` (``None``: the whole tensor), each vector on its own."""
    keep = axis is not None
    na = np.maximum(np.sqrt(np.sum(a * a, axis=axis, keepdims=keep)), 1e-7)
    nb = np.maximum(np.sqrt(np.sum(b * b, axis=axis, keepdims=keep)), 1e-7)
    cos = np.clip(np.sum((a / na) * (b / nb), axis=axis, keepdims=keep), -1, 1)
    theta = np.arccos(cos)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (np.sin((1 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta)
    return np.where(1 - cos**2 <= 1e-16, (1 - t) * a + t * b, out)


def multislerp(tensors: list[np.ndarray], weights: list[float], eps: float = 1e-8) -> np.ndarray:
    """Goddard's barycentric interpolation: tangent space at the weighted mean direction, exponential map back."""
    w = np.array(weights) / sum(weights)
    flat = [x.ravel() for x in tensors]
    norms = np.array([np.linalg.norm(x) for x in flat])
    units = [x / (n + eps) for x, n in zip(flat, norms)]
    mean = sum(wi * u for wi, u in zip(w, units))
    mean = mean / np.linalg.norm(mean)
    tangent = sum(wi * (u - np.dot(u, mean) * mean) for wi, u in zip(w, units))
    size = np.linalg.norm(tangent) + eps
    result = mean * np.cos(size) + tangent * np.sin(size) / size
    return (result * np.sum(norms * w)).reshape(tensors[0].shape)


def karcher(tensors: list[np.ndarray], iterations: int = 10, tol: float = 1e-5) -> np.ndarray:
    """The Riemannian centre of mass of the directions (fixed-point iteration), times the mean norm."""
    flat = [x.ravel() for x in tensors]
    norms = [np.linalg.norm(x) for x in flat]
    units = [x / n for x, n in zip(flat, norms)]
    mean = sum(units) / len(units)
    mean /= np.linalg.norm(mean)
    for _ in range(iterations):
        tangent = np.zeros_like(mean)
        for u in units:
            cos = np.clip(np.dot(mean, u), -1, 1)
            theta = np.arccos(cos)
            if theta >= tol:
                tangent += (theta / np.sin(theta)) * (u - cos * mean) / len(units)
        size = np.linalg.norm(tangent)
        if size < tol:
            break
        mean = np.cos(size) * mean + np.sin(size) * tangent / size
        mean /= np.linalg.norm(mean)
    return (np.mean(norms) * mean).reshape(tensors[0].shape)


@pytest.mark.parametrize("dtype", DTYPES)
def test_slerp_follows_its_gradient_over_layers_and_filters(tmp_path: Path, dtype: torch.dtype) -> None:
    states = models(2, dtype, spread=1.0)
    t = [{"filter": "bias", "value": 0.9}, {"value": [0.0, 1.0]}]  # mergekit's per-layer gradient, and a filter
    out = merge(tmp_path, "slerp", states, base=0, settings={"t": t})

    where = positions(list(SHAPES))
    for name in SHAPES:
        expected_t = 0.9 if "bias" in name else where[name]
        np.testing.assert_allclose(out[name], slerp(expected_t, *as_numpy(states, name)), **tolerance(dtype))
    assert where["layers.1.w"] == 1.0 and where["embed.weight"] == 0.0


def test_slerp_of_colinear_inputs_is_linear(tmp_path: Path) -> None:
    base = models(1)[0]
    doubled = {name: 2 * value for name, value in base.items()}
    out = merge(tmp_path, "slerp", [base, doubled], base=0, settings={"t": 0.25})

    np.testing.assert_allclose(out["layers.0.w"], 1.25 * base["layers.0.w"].double().numpy(), rtol=1e-6)


@pytest.mark.parametrize(("flatten", "row_wise", "axis"), [(True, False, None), (False, False, -1), (False, True, 0)])
@pytest.mark.parametrize("with_base", [False, True])
def test_nuslerp_by_tensor_row_or_column(
    tmp_path: Path, flatten: bool, row_wise: bool, axis: int | None, with_base: bool, slicing: str
) -> None:
    states = models(3, spread=1.0)
    settings = {"nuslerp_flatten": flatten, "nuslerp_row_wise": row_wise}
    chosen = states if with_base else states[1:]
    weights = [{"weight": 1.0}, {"weight": 3.0}]
    out = merge(tmp_path, "nuslerp", chosen, base=0 if with_base else None, settings=settings,
                input_settings=[None, *weights] if with_base else weights)  # fmt: skip

    for name in SHAPES:
        base, a, b = as_numpy(states, name)
        vector_axis = None if a.ndim < 2 else axis
        if vector_axis is not None and a.ndim == 3 and axis == 0:
            vector_axis = 0
        expected = nuslerp(0.75, a - base, b - base, vector_axis) + base if with_base else nuslerp(0.75, a, b, vector_axis)
        np.testing.assert_allclose(out[name], expected, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_base", [False, True])
def test_multislerp(tmp_path: Path, dtype: torch.dtype, with_base: bool) -> None:
    states = models(4, dtype, spread=1.0)
    weights = [{"weight": w} for w in (1.0, 2.0, 3.0)]
    chosen = states if with_base else states[1:]
    out = merge(tmp_path, "multislerp", chosen, base=0 if with_base else None,
                input_settings=([None] if with_base else []) + weights)  # fmt: skip

    for name in SHAPES:
        base, *others = as_numpy(states, name)
        if with_base:
            expected = multislerp([x - base for x in others], [1.0, 2.0, 3.0]) + base
        else:
            expected = multislerp(others, [1.0, 2.0, 3.0])
        np.testing.assert_allclose(out[name], expected, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_karcher_mean(tmp_path: Path, dtype: torch.dtype) -> None:
    states = models(3, dtype, spread=1.0)
    out = merge(tmp_path, "karcher", states)

    for name in SHAPES:
        np.testing.assert_allclose(out[name], karcher(as_numpy(states, name)), rtol=5e-5, atol=5e-5)


def test_karcher_of_equal_directions_is_their_mean_norm(tmp_path: Path) -> None:
    base = models(1)[0]
    out = merge(tmp_path, "karcher", [base, {n: 3 * v for n, v in base.items()}])

    np.testing.assert_allclose(out["layers.0.w"], 2 * base["layers.0.w"].double().numpy(), rtol=1e-5)
    assert math.isclose(float(np.linalg.norm(out["embed.weight"])), 2 * float(base["embed.weight"].norm()), rel_tol=1e-5)


def test_slerp_multislerp_and_karcher_stream_by_slices(tmp_path: Path, slicing: str) -> None:
    """Their angles are taken over the whole tensor, whether it is read as one slice or as many."""
    states = models(3, spread=1.0)
    weights = [{"weight": 1.0}, {"weight": 2.0}]
    slerped = merge(tmp_path, "slerp", states[:2], base=0, settings={"t": 0.3})
    multi = merge(tmp_path, "multislerp", states, base=0, input_settings=[None, *weights])
    mean = merge(tmp_path, "karcher", states)

    for name in SHAPES:
        base, a, b = as_numpy(states, name)
        np.testing.assert_allclose(slerped[name], slerp(0.3, base, a), rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(multi[name], multislerp([a - base, b - base], [1.0, 2.0]) + base, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(mean[name], karcher([base, a, b]), rtol=5e-5, atol=5e-5)
