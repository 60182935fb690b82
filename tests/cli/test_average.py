"""``swa-average`` end to end: formats, weights, BN refresh with a config, soups, and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from composer_swa.config import build_run, load_config
from tests.cli.helpers import CONFIG, invoke


@pytest.fixture
def finetunes(tmp_path: Path) -> tuple[Path, list[dict[str, torch.Tensor]], list[Path]]:
    """A config and three perturbed copies of its model, saved as the different formats people have."""
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG)
    model = build_run(load_config(config)).model
    generator = torch.Generator().manual_seed(0)
    states = []
    for _ in range(3):
        state = {
            k: v + 0.3 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v.clone()
            for k, v in model.state_dict().items()
        }
        states.append(state)
    paths = [tmp_path / "a.pt", tmp_path / "b.safetensors", tmp_path / "c.bin"]
    torch.save({"model": {f"module.{k}": v for k, v in states[0].items()}}, paths[0])
    save_file(states[1], paths[1])
    torch.save(states[2], paths[2])
    return config, states, paths


def test_uniform_average_with_batch_norm_recomputed_over_the_config_data(finetunes: Any, tmp_path: Path) -> None:
    config, states, paths = finetunes
    code, out = invoke(*paths, "--config", config, "-o", tmp_path / "avg.safetensors")
    assert code == 0, out
    averaged = load_file(tmp_path / "avg.safetensors")

    weight = np.mean([s["layers.1.weight"].double().numpy() for s in states], axis=0)
    bias = np.mean([s["layers.1.bias"].double().numpy() for s in states], axis=0)
    np.testing.assert_allclose(averaged["layers.1.weight"].numpy(), weight, rtol=1e-6)
    # Fresh statistics: the averaged first layer's outputs over all 96 training samples.
    inputs = np.stack([sample[0].double().numpy().ravel() for sample in build_run(load_config(config)).train_dataloader.dataset])
    activations = inputs @ weight.T + bias
    np.testing.assert_allclose(averaged["layers.2.running_mean"].numpy(), activations.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(averaged["layers.2.running_var"].numpy(), activations.var(axis=0, ddof=1), rtol=1e-5, atol=1e-6)
    assert "batch-norm statistics recomputed over 96 samples" in out
    with safe_open(tmp_path / "avg.safetensors", "pt") as file:
        metadata = file.metadata()
    assert metadata["method"] == "uniform" and json.loads(metadata["batch_norm_recomputed"]) == {"samples": 96}


def test_weighted_and_output_dtype(finetunes: Any, tmp_path: Path) -> None:
    _, states, paths = finetunes
    code, out = invoke(*paths, "--weights", "2,1,1", "--dtype", "bfloat16", "-o", tmp_path / "w")
    assert code == 0, out
    averaged = load_file(tmp_path / "w" / "model.safetensors")

    expected = sum(w * s["layers.4.weight"].double().numpy() for w, s in zip([0.5, 0.25, 0.25], states))
    assert averaged["layers.4.weight"].dtype == torch.bfloat16
    assert torch.equal(averaged["layers.4.weight"], torch.from_numpy(expected).float().to(torch.bfloat16))
    assert torch.equal(averaged["layers.2.num_batches_tracked"], states[0]["layers.2.num_batches_tracked"])


def test_greedy_soup_through_the_command(finetunes: Any, tmp_path: Path) -> None:
    config, _, paths = finetunes
    code, out = invoke(*paths, "--method", "greedy", "--config", config, "-o", tmp_path / "greedy.safetensors")
    assert code == 0, out
    with safe_open(tmp_path / "greedy.safetensors", "pt") as file:
        metadata = file.metadata()
    chosen = json.loads(metadata["chosen"])
    assert out.count("greedy: ") == 3 and len(chosen) >= 1
    weights = json.loads(metadata["weights"])
    assert [k for k, w in enumerate(weights) if w] == sorted(chosen)


def test_lawa_decay_and_soce_methods(finetunes: Any, tmp_path: Path) -> None:
    _, states, paths = finetunes
    assert invoke(*paths, "--method", "lawa", "--last-k", "2", "-o", tmp_path / "lawa.safetensors")[0] == 0
    lawa = load_file(tmp_path / "lawa.safetensors")["layers.4.bias"]
    np.testing.assert_allclose(lawa.numpy(), (states[1]["layers.4.bias"] + states[2]["layers.4.bias"]).numpy() / 2, rtol=1e-6)

    scores = tmp_path / "scores.csv"
    scores.write_text("candidate,a,b\nx,0.9,0.1\ny,0.2,0.3\nz,0.1,0.8\n")
    code, out = invoke(*paths, "--method", "soce", "--scores", scores, "-o", tmp_path / "soce.safetensors")
    assert code == 0, out
    assert "soce: experts: a -> candidate 0, b -> candidate 2" in out


def test_dry_run_reports_and_writes_nothing(finetunes: Any, tmp_path: Path) -> None:
    _, _, paths = finetunes
    code, out = invoke(*paths, "--dry-run")
    assert code == 0, out
    assert "no differences in keys, shapes or dtypes" in out and "cosine similarity" in out
    assert "[0] 1.000000" in out


def test_mismatches_exit_2_listing_every_difference(finetunes: Any, tmp_path: Path) -> None:
    _, states, paths = finetunes
    other = dict(states[0])
    other["layers.4.weight"] = torch.zeros(5, 8)
    save_file(other, tmp_path / "other.safetensors")

    code, out = invoke(paths[1], tmp_path / "other.safetensors", "-o", tmp_path / "never.safetensors")

    assert code == 2 and "Traceback" not in out
    assert "'layers.4.weight' has shape [3, 8] in input 0, [5, 8] in input 1" in out
    assert not (tmp_path / "never.safetensors").exists()
    assert invoke(paths[1], tmp_path / "other.safetensors", "--dry-run")[0] == 2


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_bad_inputs_exit_2_and_nothing_runs(finetunes: Any, tmp_path: Path) -> None:
    _, _, paths = finetunes
    torch.save({"weight": _RunsCode(tmp_path / "ran")}, tmp_path / "evil.pt")

    code, out = invoke(paths[1], tmp_path / "evil.pt", "-o", tmp_path / "x.safetensors")
    assert code == 2 and "refused to load" in out and not (tmp_path / "ran").exists()
    code, out = invoke(paths[1], tmp_path / "missing.pt", "-o", tmp_path / "x.safetensors")
    assert code == 2 and "missing.pt' does not exist" in out
    code, out = invoke(*paths, "--weights", "1,2", "-o", tmp_path / "x.safetensors")
    assert code == 2 and "got 2 weights for 3 inputs" in out
    code, out = invoke(*paths, "--method", "greedy", "-o", tmp_path / "x.safetensors")
    assert code == 2 and "--method greedy needs --config" in out


@pytest.mark.parametrize(
    ("method", "text", "expected"),
    [
        ("linear", "[1, 2\n", "is not readable YAML/JSON"),
        ("linear", "[1, null]\n", "expected a list of numbers"),
        ("layerwise", "rules: [{weights: [1, 1]}]\n", "each of 'rules' needs a 'pattern'"),
    ],
)
def test_a_bad_weights_file_is_one_message(tmp_path: Path, method: str, text: str, expected: str) -> None:
    """--weights-from that is not YAML, holds a null weight or a rule without a pattern: exit 2, no traceback."""
    inputs = []
    for name in ("a", "b"):
        save_file({"w": torch.ones(2)}, tmp_path / f"{name}.safetensors")
        inputs.append(tmp_path / f"{name}.safetensors")
    spec = tmp_path / "weights.yaml"
    spec.write_text(text)
    code, out = invoke(*inputs, "--method", method, "--weights-from", spec, "-o", tmp_path / "out.safetensors")
    assert code == 2 and expected in out and "Traceback" not in out, out
    assert not (tmp_path / "out.safetensors").exists()
