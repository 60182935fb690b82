"""fisher and regmean through ``swa-average --config``, against NumPy: per-sample gradients and layer inputs by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from composer_swa.config import build_run, load_config
from tests.cli.helpers import invoke

CONFIG = """\
model: {{name: mlp, hidden: {hidden}}}
data:
  train: {{name: synthetic, samples: 40, features: 6, classes: 3, batch_size: 16}}
optimizer: {{name: sgd, lr: 0.1}}
trainer: {{max_duration: 1ep}}
"""


def finetunes(tmp_path: Path, hidden: str) -> tuple[Path, list[dict[str, torch.Tensor]], list[Path], np.ndarray, np.ndarray]:
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(hidden=hidden))
    run = build_run(load_config(config))
    generator = torch.Generator().manual_seed(0)
    states, paths = [], []
    for k in range(3):
        state = {name: v + 0.5 * torch.randn(v.shape, generator=generator) for name, v in run.model.state_dict().items()}
        save_file(state, tmp_path / f"m{k}.safetensors")
        states.append(state)
        paths.append(tmp_path / f"m{k}.safetensors")
    samples = list(run.train_dataloader.dataset)
    x = np.stack([s[0].double().numpy().ravel() for s in samples])
    y = np.array([int(s[1]) for s in samples])
    return config, states, paths, x, y


def test_fisher_weighs_each_entry_by_its_diagonal_fisher(tmp_path: Path) -> None:
    config, states, paths, x, y = finetunes(tmp_path, "[]")
    code, out = invoke(
        *paths, "--method", "fisher", "--param", "fisher_floor=1e-6", "--config", config, "-o", tmp_path / "f.safetensors"
    )
    assert code == 0, out
    merged = load_file(tmp_path / "f.safetensors")

    fishers, weights = [], []
    for state in states:
        w, b = state["layers.1.weight"].double().numpy(), state["layers.1.bias"].double().numpy()
        logits = x @ w.T + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        residual = p - np.eye(3)[y]  # d(cross-entropy)/d(logits), one row per sample
        fishers.append((np.mean(np.einsum("sc,sf->scf", residual, x) ** 2, axis=0), np.mean(residual**2, axis=0)))
        weights.append((w, b))
    for index, name in enumerate(("layers.1.weight", "layers.1.bias")):
        importance = [f[index] + 1e-6 for f in fishers]
        expected = sum(i * wb[index] for i, wb in zip(importance, weights)) / sum(importance)
        np.testing.assert_allclose(merged[name].double().numpy(), expected, rtol=1e-4, atol=1e-6)
    # The data moved the result away from the plain mean: the test could tell the two apart.
    plain = np.mean([wb[0] for wb in weights], axis=0)
    assert np.abs(merged["layers.1.weight"].double().numpy() - plain).max() > 1e-3


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_regmean_solves_the_least_squares_merge_of_each_linear_layer(tmp_path: Path, alpha: float) -> None:
    config, states, paths, x, _ = finetunes(tmp_path, "[4]")
    code, out = invoke(
        *paths, "--method", "regmean", "--param", f"alpha={alpha}", "--config", config, "-o", tmp_path / "r.safetensors"
    )
    assert code == 0, out
    merged = {name: t.double().numpy() for name, t in load_file(tmp_path / "r.safetensors").items()}

    def reduced(inputs: np.ndarray) -> np.ndarray:
        gram = inputs.T @ inputs
        return alpha * gram + (1 - alpha) * np.diag(np.diag(gram))

    layer_inputs = {"layers.1.weight": [], "layers.3.weight": []}
    for state in states:
        w1, b1 = state["layers.1.weight"].double().numpy(), state["layers.1.bias"].double().numpy()
        layer_inputs["layers.1.weight"].append(x)
        layer_inputs["layers.3.weight"].append(np.maximum(x @ w1.T + b1, 0))
    for name, inputs in layer_inputs.items():
        grams = [reduced(i) for i in inputs]
        expected = sum(s[name].double().numpy() @ g for s, g in zip(states, grams)) @ np.linalg.inv(sum(grams))
        np.testing.assert_allclose(merged[name], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        merged["layers.1.bias"], np.mean([s["layers.1.bias"].double().numpy() for s in states], 0), rtol=1e-6
    )


def test_data_aware_methods_need_a_config(tmp_path: Path) -> None:
    _, _, paths, _, _ = finetunes(tmp_path, "[]")
    code, out = invoke(*paths, "--method", "fisher", "-o", tmp_path / "f.safetensors")

    assert code == 2 and "--method fisher needs --config" in out and "Traceback" not in out, out
    assert not (tmp_path / "f.safetensors").exists()
