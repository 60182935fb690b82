"""``swa-average RECIPE.yml`` and the per-tensor flags: recipes run as written, what we cannot do is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.cli.helpers import invoke


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """A base model folder (with a tokenizer) and two fine-tunes of it (with another)."""
    generator = torch.Generator().manual_seed(0)
    base = {
        "model.embed_tokens.weight": torch.randn(5, 4, generator=generator),
        **{f"model.layers.{k}.mlp.w": torch.randn(4, 4, generator=generator) for k in range(3)},
    }
    found = {}
    for name in ("base", "a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        state = base if name == "base" else {n: v + 0.1 * torch.randn(v.shape, generator=generator) for n, v in base.items()}
        save_file(state, folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 3}))
        (folder / "tokenizer.json").write_text(json.dumps({"from": name}))
        found[name] = folder
    return found


def write(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_a_recipe_equals_the_same_merge_by_flags_and_copies_the_base_tokenizer(tmp_path: Path, folders: dict[str, Path]) -> None:
    recipe = {
        "merge_method": "ties",
        "base_model": str(folders["base"]),
        "tokenizer_source": "base",
        "out_dtype": "bfloat16",
        "parameters": {"density": 0.5, "weight": 1.0},
        "models": [{"model": str(folders["a"])}, {"model": str(folders["b"])}],
    }
    code, out = invoke(write(tmp_path, recipe), "-o", tmp_path / "recipe_out")
    assert code == 0, out
    code, out = invoke(
        folders["a"],
        folders["b"],
        "--method",
        "ties",
        "--base-model",
        folders["base"],
        "--param",
        "density=0.5",
        "--param",
        "weight=1",
        "--dtype",
        "bfloat16",
        "-o",
        tmp_path / "flags_out",
    )
    assert code == 0, out

    by_recipe, by_flags = (
        load_file(tmp_path / "recipe_out" / "model.safetensors"),
        load_file(tmp_path / "flags_out" / "model.safetensors"),
    )
    assert by_recipe.keys() == by_flags.keys() and all(torch.equal(by_recipe[n], by_flags[n]) for n in by_recipe)
    assert by_recipe["model.layers.0.mlp.w"].dtype == torch.bfloat16
    assert json.loads((tmp_path / "recipe_out" / "tokenizer.json").read_text()) == {"from": "base"}
    with safe_open(tmp_path / "recipe_out" / "model.safetensors", "pt") as file:
        metadata = file.metadata()
    assert metadata["method"] == "ties" and yaml.safe_load(metadata["recipe"]) == recipe  # the recipe, in the header


def test_a_linear_recipe_with_a_gradient_weighs_each_layer(tmp_path: Path, folders: dict[str, Path]) -> None:
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": str(folders["a"]), "parameters": {"weight": [1.0, 0.0]}},
            {"model": str(folders["b"]), "parameters": {"weight": [0.0, 1.0]}},
        ],
    }
    code, out = invoke(write(tmp_path, recipe), "-o", tmp_path / "out.safetensors")
    assert code == 0, out
    merged = load_file(tmp_path / "out.safetensors")
    a, b = load_file(folders["a"] / "model.safetensors"), load_file(folders["b"] / "model.safetensors")

    name = "model.layers.{}.mlp.w"
    np.testing.assert_allclose(merged[name.format(0)].numpy(), a[name.format(0)].numpy())  # t = 0: all a
    np.testing.assert_allclose(merged[name.format(1)].numpy(), (a[name.format(1)] + b[name.format(1)]).numpy() / 2, rtol=1e-6)
    np.testing.assert_allclose(merged[name.format(2)].numpy(), b[name.format(2)].numpy())  # t = 1: all b


def test_what_a_recipe_cannot_do_is_refused_by_name_and_nothing_is_written(tmp_path: Path, folders: dict[str, Path]) -> None:
    recipe = {
        "merge_method": "ties",
        "base_model": str(folders["base"]),
        "tokenizer_source": "union",
        "chat_template": "chatml",
        "modules": {},
        "name": "mine",
        "models": [{"model": f"{folders['a']}+some/lora", "weight": 1}],
    }
    code, out = invoke(write(tmp_path, recipe), "-o", tmp_path / "never")

    assert code == 2 and "Traceback" not in out, out
    for fault in (
        "recipe.name: unknown key",
        "modules: per-module",
        "chat_template:",
        "tokenizer_source: 'union'",
        "LoRA adapter",
        "models[0].weight: unknown key",
    ):
        assert fault in out, (fault, out)
    assert not (tmp_path / "never").exists()


def test_a_recipe_with_flags_it_sets_or_a_missing_parameter_exits_2(tmp_path: Path, folders: dict[str, Path]) -> None:
    recipe = {"merge_method": "slerp", "base_model": str(folders["base"]), "models": [{"model": str(folders["a"])}]}
    path = write(tmp_path, recipe)

    code, out = invoke(path, "--method", "ties", "-o", tmp_path / "never")
    assert code == 2 and "cannot be given with it" in out, out
    code, out = invoke(path, "-o", tmp_path / "never")
    assert code == 2 and "parameter 't'" in out and "required" in out, out
    assert not (tmp_path / "never").exists()


def test_unread_parameters_warn_and_flags_are_checked(tmp_path: Path, folders: dict[str, Path]) -> None:
    recipe = {
        "merge_method": "slerp",
        "base_model": str(folders["base"]),
        "parameters": {"t": 0.5, "density": 0.3},
        "models": [{"model": str(folders["base"])}, {"model": str(folders["a"])}],
    }
    code, out = invoke(write(tmp_path, recipe), "-o", tmp_path / "out")
    assert code == 0 and "warning: merge_method slerp reads no parameter 'density'" in out, out

    code, out = invoke(folders["a"], folders["b"], "--param", "t=0.5", "-o", tmp_path / "x")
    assert code == 2 and "--base-model and --param are read by the per-tensor methods" in out, out
    code, out = invoke(
        folders["a"], "--method", "slerp", "--base-model", folders["base"], "--param", "alpha=1", "-o", tmp_path / "x"
    )
    assert code == 2 and "has no parameter ['alpha']" in out, out
