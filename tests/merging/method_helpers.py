"""What the per-method tests share: random "models" saved as safetensors, one merge through the engine, NumPy helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from composer_swa import safetensors_format
from composer_swa.merging.methods import METHODS, MergeInputs, MergeOptions
from composer_swa.merging.tensor_merge import merge_tensors

SHAPES = {"embed.weight": (6, 4), "layers.0.w": (7, 5), "layers.1.w": (3, 4, 5), "layers.1.bias": (30,)}
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def models(count: int, dtype: torch.dtype = torch.float32, seed: int = 0, spread: float = 0.3) -> list[dict[str, torch.Tensor]]:
    """``count`` models: the first a "base", the others it plus noise of scale ``spread`` (fine-tunes of it)."""
    generator = torch.Generator().manual_seed(seed)
    base = {name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()}
    out = [base] + [
        {n: v + spread * torch.randn(v.shape, generator=generator) for n, v in base.items()} for _ in range(count - 1)
    ]
    return [{n: v.to(dtype) for n, v in state.items()} for state in out]


def as_numpy(states: Sequence[Mapping[str, torch.Tensor]], name: str) -> list[np.ndarray]:
    """One tensor of every model, as float64 (the values the merge reads, whatever their dtype)."""
    return [state[name].to(torch.float64).numpy() for state in states]


def merge(
    tmp_path: Path,
    method: str,
    states: Sequence[Mapping[str, torch.Tensor]],
    base: int | None = None,
    settings: Mapping[str, Any] | None = None,
    input_settings: Sequence[Mapping[str, Any] | None] = (),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``method`` over ``states`` (saved as files) through the engine, fp32 output, as float64 arrays."""
    paths = []
    for k, state in enumerate(states):
        path = tmp_path / f"in{k}.safetensors"
        save_file(dict(state), path)
        paths.append(str(path))
    options = MergeOptions(base_model=base, settings=dict(settings or {}), input_settings=tuple(input_settings), seed=seed)
    out = tmp_path / f"{method}.safetensors"
    out.unlink(missing_ok=True)
    merge_tensors(METHODS[method], options, MergeInputs(tuple(paths)), out, dtype=torch.float32)
    return {name: tensor.to(torch.float64).numpy() for name, tensor in load_file(out).items()}


@pytest.fixture(params=["whole", "sliced"])
def slicing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each tensor as one slice, or as slices of a few rows (every first pass over several slices)."""
    if request.param == "sliced":
        monkeypatch.setattr(safetensors_format, "CHUNK_ELEMENTS", 96)  # slices of 12 elements
    return str(request.param)


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """Inputs are read exactly and computed in fp32: the tolerance is fp32's, whatever the input dtype."""
    return {"rtol": 2e-5, "atol": 2e-5}
