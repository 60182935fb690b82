"""The same recipes through mergekit itself and through ``swa-average RECIPE.yml``, on tiny Llama models.

Deterministic methods must agree within float tolerance. The random ones (DARE, DELLA) draw their
masks from different generators (mergekit: torch's global one; ours: seeded per slice), so masks
cannot be matched here; they are compared in expectation instead: with one model, the L1 rescale
makes ``‖θ − θ_base‖₁`` equal ``‖δ‖₁`` exactly for both, and the fraction of entries kept must be
``density`` up to sampling noise; with three models, the mean ``|θ − θ_base|`` agrees within 15%.
(The per-method NumPy tests check our masks entry by entry with matched draws.) mergekit runs once
per recipe in this module (its import is slow).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.cli.helpers import invoke

LAYERS = 3
GRADIENT = [0.0, 0.3, 1.0]
RECIPES: dict[str, dict[str, Any]] = {
    "linear": {"models": [{"model": "m0", "parameters": {"weight": GRADIENT}}, {"model": "m1", "parameters": {"weight": 0.5}}]},
    "slerp": {
        "base_model": "base",
        "models": [{"model": "base"}, {"model": "m0"}],
        "parameters": {"t": [{"filter": "self_attn", "value": GRADIENT}, {"filter": "mlp", "value": 0.7}, {"value": 0.4}]},
    },
    "nuslerp": {
        "base_model": "base",
        "models": [{"model": "m0", "parameters": {"weight": 1.0}}, {"model": "m1", "parameters": {"weight": 2.0}}],
    },
    "multislerp": {"models": [{"model": f"m{k}", "parameters": {"weight": k + 1.0}} for k in range(3)]},
    "karcher": {"models": [{"model": f"m{k}"} for k in range(3)]},
    "task_arithmetic": {
        "base_model": "base",
        "parameters": {"lambda": 0.8},
        "models": [{"model": f"m{k}", "parameters": {"weight": 0.5}} for k in range(3)],
    },
    "ties": {
        "base_model": "base",
        "parameters": {"normalize": True},
        "models": [{"model": f"m{k}", "parameters": {"weight": [1.0, 0.5], "density": 0.4 + 0.2 * k}} for k in range(3)],
    },
    "breadcrumbs": {
        "base_model": "base",
        "models": [{"model": f"m{k}", "parameters": {"weight": 1.0, "density": 0.6, "gamma": 0.05}} for k in range(3)],
    },
    "breadcrumbs_ties": {
        "base_model": "base",
        "models": [{"model": f"m{k}", "parameters": {"weight": 1.0, "density": 0.6}} for k in range(3)],
    },
    "sce": {"base_model": "base", "parameters": {"select_topk": 0.5}, "models": [{"model": f"m{k}"} for k in range(3)]},
    "model_stock": {"base_model": "base", "models": [{"model": f"m{k}"} for k in range(3)]},
    "nearswap": {"base_model": "base", "parameters": {"t": 0.02}, "models": [{"model": "base"}, {"model": "m0"}]},
    "passthrough": {
        "slices": [{"sources": [{"model": "m0", "layer_range": [0, 2]}]}, {"sources": [{"model": "m1", "layer_range": [1, 3]}]}]
    },
}
ONE_MODEL = {"density": 0.5, "weight": 1.0}
RANDOM: dict[str, dict[str, Any]] = {
    "dare_linear": {"base_model": "base", "models": [{"model": "m0", "parameters": ONE_MODEL}]},
    "della_linear": {"base_model": "base", "models": [{"model": "m0", "parameters": ONE_MODEL | {"epsilon": 0.1}}]},
    "dare_ties": {"base_model": "base", "models": [{"model": f"m{k}", "parameters": ONE_MODEL} for k in range(3)]},
    "della": {"base_model": "base", "models": [{"model": f"m{k}", "parameters": ONE_MODEL | {"epsilon": 0.1}} for k in range(3)]},
}


def _resolve(recipe: Any, folder: Path) -> Any:
    """The recipe with each model name made a path in ``folder``."""
    if isinstance(recipe, dict):
        return {k: (str(folder / v) if k in ("model", "base_model") else _resolve(v, folder)) for k, v in recipe.items()}
    if isinstance(recipe, list):
        return [_resolve(v, folder) for v in recipe]
    return recipe


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """Every recipe through mergekit and through swa-average: (theirs, ours) by method, and the inputs under "inputs"."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("mergekit")
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=96,
        tie_word_embeddings=False,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    base = LlamaForCausalLM(config)
    base.save_pretrained(folder / "base")
    for k in range(3):
        tuned = LlamaForCausalLM(config)
        with torch.no_grad():
            for p, q in zip(tuned.parameters(), base.parameters()):
                p.copy_(q + 0.02 * torch.randn_like(q))
        tuned.save_pretrained(folder / f"m{k}")
    results: dict[str, Any] = {
        "inputs": ({}, {name: load_file(folder / name / "model.safetensors") for name in ("base", "m0", "m1", "m2")})
    }
    for method, spec in (RECIPES | RANDOM).items():
        recipe = _resolve({"merge_method": method, "dtype": "float32", **spec}, folder)
        run_merge(
            MergeConfiguration.model_validate(recipe),
            str(folder / f"theirs_{method}"),
            MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True, random_seed=0),
        )
        path = folder / f"{method}.yml"
        path.write_text(yaml.safe_dump(recipe))
        code, out = invoke(path, "-o", folder / f"ours_{method}")
        assert code == 0, out
        theirs = load_file(folder / f"theirs_{method}" / "model.safetensors")
        ours = load_file(folder / f"ours_{method}" / "model.safetensors")
        results[method] = (theirs, ours)
        if method == "passthrough":
            results["passthrough_config"] = (
                json.loads((folder / f"theirs_{method}" / "config.json").read_text()),
                json.loads((folder / f"ours_{method}" / "config.json").read_text()),
            )
    return results


@pytest.mark.parametrize("method", list(RECIPES))
def test_deterministic_methods_equal_mergekit(merged: Any, method: str) -> None:
    theirs, ours = merged[method]

    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        np.testing.assert_allclose(
            ours[name].numpy(), theirs[name].float().numpy(), rtol=1e-4, atol=2e-6, err_msg=f"{method} {name}"
        )
    if method == "passthrough":
        assert len({n.split(".")[2] for n in ours if n.startswith("model.layers.")}) == 4
        theirs_config, ours_config = merged["passthrough_config"]
        assert ours_config["num_hidden_layers"] == theirs_config["num_hidden_layers"] == 4


@pytest.mark.parametrize("method", ["dare_linear", "della_linear"])
def test_one_model_random_drop_equals_mergekit_in_l1_norm_and_density(merged: Any, method: str) -> None:
    theirs, ours = merged[method]
    inputs = merged["inputs"][1]
    for name in theirs:
        base, tuned = inputs["base"][name].double(), inputs["m0"][name].double()
        if torch.equal(base, tuned):
            continue
        for result in (theirs, ours):
            change = result[name].double() - base
            assert float(change.abs().sum()) == pytest.approx(float((tuned - base).abs().sum()), rel=1e-4)
            kept = float((change != 0).double().mean())
            spread = 4 * (0.25 / base.numel()) ** 0.5  # four standard deviations of a Bernoulli(0.5) mean
            assert abs(kept - 0.5) < max(spread, 0.02) or base.numel() < 64, (method, name, kept)


@pytest.mark.parametrize("method", ["dare_ties", "della"])
def test_three_model_random_drop_agrees_with_mergekit_in_expectation(merged: Any, method: str) -> None:
    theirs, ours = merged[method]
    base = merged["inputs"][1]["base"]
    big = [name for name in theirs if base[name].numel() >= 1024]
    mean_theirs = np.mean([float((theirs[n].double() - base[n].double()).abs().mean()) for n in big])
    mean_ours = np.mean([float((ours[n].double() - base[n].double()).abs().mean()) for n in big])

    assert mean_ours == pytest.approx(mean_theirs, rel=0.15)
