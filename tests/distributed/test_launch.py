"""``swa-train CONFIG --nproc 2``: torchrun's launcher starts both processes; one run folder results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

REPOSITORY = Path(__file__).resolve().parents[2]

CONFIG = """\
model: {name: mlp, in_features: 8, num_classes: 3, hidden: [16], batch_norm: true}
data:
  train: {name: synthetic, samples: 240, features: 8, classes: 3, batch_size: 20}
  eval: {name: synthetic, samples: 90, features: 8, classes: 3, batch_size: 30}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
algorithms:
  - {name: swa, swa_start: 0.5dur, update_interval: 1ep}
trainer: {max_duration: 4ep, eval_interval: 2ep, progress_bar: false, device: cpu}
"""


def test_nproc_two_trains_with_global_batches_into_one_run_folder(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG)
    run_dir = tmp_path / "runs" / "a"
    command = [sys.executable, "-m", "composer_swa.cli.train", str(config), "--nproc", "2", "--run-dir", str(run_dir)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["a"]
    assert {p.name for p in run_dir.iterdir()} == {
        "config.yaml", "metrics.jsonl", "model.safetensors", "SWA-average.safetensors", "SWA-training.safetensors",
        "export.json", "summary.json",
    }  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    # 240 samples, 20 a process a batch, 2 processes: 6 global batches an epoch, 4 epochs.
    assert summary["batches"] == 24 and summary["samples"] == 4 * 240
    assert (
        summary["algorithms"]["SWA"]["window_batches"] == [12, 24] and summary["algorithms"]["SWA"]["n_averaged"] == 3
    )  # epochs end at 12, 18, 24
    assert result.stdout.count("run folder:") == 2  # process 0 alone prints: at FIT_START and under the table
    weights = load_file(run_dir / "model.safetensors")
    assert not [name for name in weights if name.startswith("module.")]
