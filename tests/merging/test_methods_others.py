"""model_stock, nearswap, passthrough with slices, and the plan's parameters (gradients, filters, precedence, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from composer_swa.merging.methods import METHODS, MergeInputs, MergeOptions
from composer_swa.merging.plan import OutputSlice, PlanError, SliceSource
from composer_swa.merging.settings import Parameter, SettingError, resolve
from composer_swa.merging.tensor_merge import merge_tensors
from tests.merging.method_helpers import DTYPES, SHAPES, as_numpy, merge, models, slicing, tolerance

__all__ = ["slicing"]


def model_stock(base: np.ndarray, tuned: list[np.ndarray], rows: bool) -> np.ndarray:
    """Jang et al.'s eq.: t = N cos / (1 + (N − 1) cos), cos the mean pairwise cosine of the task vectors."""
    axis = -1 if rows else None
    deltas = [x - base for x in tuned]
    if rows and base.ndim < 2:
        axis = None
    cosines = [
        np.clip(np.sum(a * b, axis=axis) / np.maximum(np.linalg.norm(a, axis=axis) * np.linalg.norm(b, axis=axis), 1e-6), -1, 1)
        for i, a in enumerate(deltas) for b in deltas[i + 1 :]
    ]  # fmt: skip
    cos = np.mean(cosines, axis=0)
    n = len(tuned)
    t = n * cos / (1 + (n - 1) * cos)
    if axis is not None:
        t = t[..., None]
    return t * np.mean(tuned, axis=0) + (1 - t) * base


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_stock(tmp_path: Path, dtype: torch.dtype) -> None:
    states = models(4, dtype)
    out = merge(tmp_path, "model_stock", states, base=0)

    for name in SHAPES:
        base, *tuned = as_numpy(states, name)
        np.testing.assert_allclose(out[name], model_stock(base, tuned, rows=False), **tolerance(dtype))


def test_model_stock_filter_wise_and_streamed(tmp_path: Path, slicing: str) -> None:
    states = models(4)
    whole = merge(tmp_path, "model_stock", states, base=0)
    rows = merge(tmp_path, "model_stock", states, base=0, settings={"filter_wise": True})

    for name in SHAPES:
        base, *tuned = as_numpy(states, name)
        np.testing.assert_allclose(whole[name], model_stock(base, tuned, rows=False), rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(rows[name], model_stock(base, tuned, rows=True), rtol=2e-5, atol=2e-5)


def test_nearswap(tmp_path: Path, slicing: str) -> None:
    states = models(2)
    out = merge(tmp_path, "nearswap", states, base=0, settings={"t": 0.2})

    for name in SHAPES:
        base, other = as_numpy(states, name)
        weight = np.clip(0.2 / np.maximum(np.abs(base - other), 1e-6), 0, 1)
        np.testing.assert_allclose(out[name], weight * other + (1 - weight) * base, rtol=2e-5, atol=2e-6)


def test_passthrough_slices_stack_layers_and_set_the_config(tmp_path: Path) -> None:
    """A frankenmerge: layers 0–1 of model a, then 1–2 of model b; embeddings from a, the head from b."""
    layers = {f"model.layers.{k}.w": torch.full((2, 2), float(k)) for k in range(3)}
    for name, offset in (("a", 0.0), ("b", 10.0)):
        folder = tmp_path / name
        folder.mkdir()
        state = {n: v + offset for n, v in layers.items()} | {"model.embed_tokens.weight": torch.full((3, 2), offset),
                                                            "lm_head.weight": torch.full((3, 2), offset + 1)}  # fmt: skip
        save_file(state, folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 3}))
    slices = (OutputSlice((SliceSource(0, (0, 2)),)), OutputSlice((SliceSource(1, (1, 3), {"scale": 2.0}),)))
    paths = (str(tmp_path / "a"), str(tmp_path / "b"))
    merge_tensors(METHODS["passthrough"], MergeOptions(slices=slices), MergeInputs(paths), tmp_path / "out")

    out = load_file(tmp_path / "out" / "model.safetensors")
    assert sorted(out) == ["lm_head.weight", "model.embed_tokens.weight"] + [f"model.layers.{k}.w" for k in range(4)]
    assert [float(out[f"model.layers.{k}.w"][0, 0]) for k in range(4)] == [0.0, 1.0, 22.0, 24.0]
    # The head is planned with the last slice, its source's parameters included (as mergekit's post weights).
    assert float(out["model.embed_tokens.weight"][0, 0]) == 0.0 and float(out["lm_head.weight"][0, 0]) == 22.0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["num_hidden_layers"] == 4


def test_settings_resolve_as_mergekit_does() -> None:
    weight = Parameter("weight", float)
    gradient = [0.0, 1.0, 0.5]
    # t = 0.25 lies halfway between the first two anchors; t = 0.75 halfway between the last two.
    assert resolve(weight, [{"weight": gradient}], "x", 0.25) == pytest.approx(0.5)
    assert resolve(weight, [{"weight": gradient}], "x", 0.75) == pytest.approx(0.75)
    assert resolve(weight, [{"weight": "1e-3"}], "x", 0) == 0.001
    filters = [{"filter": "mlp", "value": 1.0}, {"filter": "attn", "value": 2.0}]
    assert resolve(weight, [{"weight": filters}, {"weight": 9.0}], "layers.0.self_attn.q", 0) == 2.0
    assert resolve(weight, [{"weight": filters}, {"weight": 9.0}], "layers.0.norm", 0) == 9.0  # no filter matched: next scope
    assert resolve(Parameter("flag", bool, default=False), [{"flag": [True, False]}], "x", 0.4) is True
    with pytest.raises(SettingError, match="'weight' for tensor 'x': required"):
        resolve(weight, [{}, None], "x", 0)
    with pytest.raises(SettingError, match="expected float, got 'heavy'"):
        resolve(weight, [{"weight": "heavy"}], "x", 0)


def test_every_problem_of_a_plan_is_listed_at_once(tmp_path: Path) -> None:
    first, second = models(2)
    second["layers.0.w"] = torch.zeros(2, 2)
    del second["layers.1.bias"]
    paths = []
    for k, state in enumerate((first, second, first)):
        save_file(state, tmp_path / f"{k}.safetensors")
        paths.append(str(tmp_path / f"{k}.safetensors"))

    with pytest.raises(PlanError) as error:
        merge_tensors(METHODS["ties"], MergeOptions(base_model=0, input_settings=(None, None, {"weight": "x"})),
                      MergeInputs(tuple(paths)), tmp_path / "never.safetensors")  # fmt: skip
    message = str(error.value)
    assert "'layers.0.w' has shape [7, 5] in input 0" in message and "[2, 2] in input 1" in message
    assert "'layers.1.bias' is not in input 1" in message
    assert "parameter 'weight' of input 1" in message and "expected float, got 'x'" in message
    assert not (tmp_path / "never.safetensors").exists()
    with pytest.raises(PlanError, match="needs a base model"):
        merge_tensors(
            METHODS["ties"], MergeOptions(settings={"weight": 1.0}), MergeInputs(tuple(paths)), tmp_path / "n.safetensors"
        )
