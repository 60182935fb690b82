"""``swa-train`` with ``{name: swag}``: the SWA mean, the SWAG ensemble and their calibration in the final table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from torchmetrics.classification import MulticlassCalibrationError

from composer_swa.averaging import SWAGPosterior, bayesian_predict
from composer_swa.cli.train import main
from composer_swa.data import synthetic_classification
from composer_swa.models import MLP

CONFIG = """\
model: {name: mlp, hidden: [16]}
data:
  train: {name: synthetic, samples: 128, features: 6, classes: 3, batch_size: 32}
  eval: {name: synthetic, samples: 64, features: 6, classes: 3, seed: 0, batch_size: 64}
optimizer: {name: sgd, lr: 0.2, momentum: 0.9}
algorithms: [{name: swag, swa_start: 0.5dur, update_interval: 1ba, max_rank: 3, num_samples: 4}]
trainer: {max_duration: 4ep, progress_bar: false, seed: 0}
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_the_final_table_has_the_swa_mean_and_the_swag_ensemble(tmp_path: Path) -> None:
    (tmp_path / "swag.yaml").write_text(CONFIG)
    code, out = invoke(str(tmp_path / "swag.yaml"), "--run-dir", str(tmp_path / "run"))
    assert code == 0, out
    assert "run: SWAG *" in out and "run: SWAG ensemble" in out and "eval/ece" in out and "eval/nll" in out, out
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())["final_metrics_by_weights"]
    assert list(rows) == ["live", "SWAG", "SWAG ensemble"]
    assert sorted(rows["SWAG"]) == ["eval/accuracy", "eval/ece", "eval/loss", "eval/nll"]
    assert abs(rows["SWAG"]["eval/nll"] - rows["SWAG"]["eval/loss"]) < 1e-6  # NLL is the cross-entropy loss, computed apart

    # The ensemble's row again, from the exported posterior alone: NumPy NLL, torchmetrics' ECE.
    posterior = SWAGPosterior.from_file(tmp_path / "run" / "SWAG-posterior.safetensors")
    assert posterior.rank == 3
    inputs, targets = synthetic_classification(samples=64, features=6, classes=3, seed=0).tensors
    ensemble = bayesian_predict(
        posterior, MLP(in_features=6, num_classes=3, hidden=[16]), [(inputs, targets)], num_samples=4,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    probabilities = ensemble.probabilities.double().numpy()
    nll = -np.log(probabilities[np.arange(64), targets.numpy()]).mean()
    ece = MulticlassCalibrationError(num_classes=3, n_bins=15, norm="l1")(ensemble.probabilities, targets)
    expected = {
        "eval/nll": nll,
        "eval/ece": float(ece),
        "eval/accuracy": float((probabilities.argmax(1) == targets.numpy()).mean()),
    }
    assert sorted(rows["SWAG ensemble"]) == sorted(expected)
    for key, value in expected.items():
        assert abs(rows["SWAG ensemble"][key] - value) < 1e-5, key


def test_a_bad_swag_argument_is_refused_with_its_yaml_path(tmp_path: Path) -> None:
    (tmp_path / "swag.yaml").write_text(CONFIG.replace("max_rank: 3", "max_rank: 0"))
    code, out = invoke(str(tmp_path / "swag.yaml"), "--run-dir", str(tmp_path / "run"))
    assert code == 2 and "algorithms[0]: max_rank must be a positive integer, got 0" in out, out
    assert "Traceback" not in out and not (tmp_path / "run").exists()
