"""``swa-train A.yaml B.yaml``: several runs and every run's weights in one table; ``--jobs``; clean refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from composer_swa.cli.compare import format_table
from composer_swa.cli.train import main
from composer_swa.data import synthetic_classification
from composer_swa.models import MLP

CONSTANT = """\
model: {name: mlp, hidden: [16]}
data:
  train: {name: synthetic, samples: 128, features: 6, classes: 3, batch_size: 32}
  eval: {name: synthetic, samples: 64, features: 6, classes: 3, seed: 0, batch_size: 64}
optimizer: {name: sgd, lr: 0.2, momentum: 0.9}
algorithms: [{name: ema, half_life: 2ba, eval_with_average: false}]
trainer: {max_duration: 2ep, progress_bar: false, seed: 0}
"""
EMA_LINE = "algorithms: [{name: ema, half_life: 2ba, eval_with_average: false}]"
COSINE = CONSTANT.replace(EMA_LINE, "scheduler: {name: cosineannealingwithwarmupscheduler, t_warmup: 1ba}")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def configs(tmp_path: Path, second: str = COSINE) -> tuple[str, str]:
    (tmp_path / "constant.yaml").write_text(CONSTANT)
    (tmp_path / "cosine.yaml").write_text(second)
    return str(tmp_path / "constant.yaml"), str(tmp_path / "cosine.yaml")


def _hand_metrics(weights: dict[str, torch.Tensor]) -> dict[str, float]:
    model = MLP(in_features=6, num_classes=3, hidden=[16])
    model.load_state_dict(weights)
    data = synthetic_classification(samples=64, features=6, classes=3, seed=0)
    inputs, targets = data.tensors
    with torch.no_grad():
        logits = model.eval()(inputs).double().numpy()
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    labels = targets.numpy()
    loss = -log_probs[np.arange(len(labels)), labels].mean()
    return {"eval/accuracy": float((logits.argmax(1) == labels).mean()), "eval/loss": float(loss)}


def test_two_configs_one_table_of_every_weights(tmp_path: Path) -> None:
    constant, cosine = configs(tmp_path)
    code, out = invoke(constant, cosine, "--run-dir", str(tmp_path / "runs"))
    assert code == 0, out
    first = json.loads((tmp_path / "runs" / "constant" / "summary.json").read_text())
    second = json.loads((tmp_path / "runs" / "cosine" / "summary.json").read_text())
    assert list(first["final_metrics_by_weights"]) == ["live", "EMA"] and first["final_weights"] == "EMA"
    assert list(second["final_metrics_by_weights"]) == ["live"] and second["final_weights"] == "live"
    # final_metrics is still fit's last evaluation: with eval_with_average=false, of the live weights, before
    # FIT_END swapped the EMA in (the table shows the EMA beside it).
    assert first["final_metrics_by_weights"]["live"] == pytest.approx(first["final_metrics"], rel=1e-6)
    ema = _hand_metrics(load_file(tmp_path / "runs" / "constant" / "model.safetensors"))
    assert first["final_metrics_by_weights"]["EMA"] == pytest.approx(ema, rel=1e-5)
    # The live column is the exported training weights, evaluated by hand.
    live = _hand_metrics(load_file(tmp_path / "runs" / "constant" / "EMA-training.safetensors"))
    assert first["final_metrics_by_weights"]["live"] == pytest.approx(live, rel=1e-5)
    table = out[out.index("eval/accuracy") :]
    for label, summary in (("constant", first), ("cosine", second)):
        for weights, metrics in summary["final_metrics_by_weights"].items():
            mark = " *" if label == "constant" and weights == "EMA" else ""
            row = next(line for line in table.splitlines() if line.startswith(f"{label}: {weights}{mark} "))
            assert f"{metrics['eval/loss']:.4f}" in row and f"{metrics['eval/accuracy']:.4f}" in row
    assert "* the weights the run's final model holds" in table


def test_jobs_2_trains_both_configs_in_child_processes(tmp_path: Path) -> None:
    constant, cosine = configs(tmp_path)
    code, out = invoke(constant, cosine, "--run-dir", str(tmp_path / "runs"), "--jobs", "2", "--baseline")
    assert code == 0, out
    labels = ("constant", "constant baseline", "cosine", "cosine baseline")
    folders = ("constant", "constant/baseline", "cosine", "cosine/baseline")
    for label, folder in zip(labels, folders):
        summary = json.loads((tmp_path / "runs" / folder / "summary.json").read_text())
        assert f"[{label}] " in out  # each child's lines carry its run's name
        live = summary["final_metrics_by_weights"]["live"]
        assert any(line.startswith(f"{label}: live ") and f"{live['eval/loss']:.4f}" in line for line in out.splitlines())
    assert json.loads((tmp_path / "runs" / "constant" / "baseline" / "summary.json").read_text())["algorithms"] == {}


REFUSED = CONSTANT.replace("{name: ema, half_life: 2ba, eval_with_average: false}", "{name: swa, swa_start: 5ep}")


@pytest.mark.parametrize(
    ("second", "extra", "message"),
    [
        (COSINE.replace("name: sgd", "name: sgdd"), [], "cosine.yaml"),  # a config error in the second config
        (REFUSED, [], "refused at FIT_START"),  # the second config's SWA window lies past the end of its run
        (COSINE, ["--nproc", "2"], "--nproc 2 trains one config"),
        (COSINE, ["--jobs", "0"], "--jobs"),
    ],
)
def test_errors_exit_2_before_anything_is_written(tmp_path: Path, second: str, extra: list[str], message: str) -> None:
    constant, cosine = configs(tmp_path, second)
    code, out = invoke(constant, cosine, "--run-dir", str(tmp_path / "runs"), *extra)
    assert code == 2 and message in out and "Traceback" not in out, out
    assert not (tmp_path / "runs").exists()


def test_a_nan_metric_prints_as_nan() -> None:
    summary = {"final_metrics": {"eval/loss": None}, "final_metrics_by_weights": {"live": {"eval/loss": None}}, "seconds": 1.0}
    assert "run: live  nan" in format_table({"run": summary})
