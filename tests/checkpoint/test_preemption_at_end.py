"""SIGTERM after the last batch (at FIT_END, or during the export of final/) exits 0 and leaves no temporary file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from composer_swa.checkpoint import list_checkpoints
from tests.checkpoint.resume_run import build

ROOT = Path(__file__).resolve().parents[2]


def run_signalled(folder: Path, when: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.checkpoint.signal_at_end_run", str(folder), when],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def temporaries(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(".tmp")]


def test_sigterm_during_the_export_lets_it_complete_and_exits_0(tmp_path: Path) -> None:
    result = run_signalled(tmp_path, "export")

    assert result.returncode == 0, result.stderr
    assert temporaries(tmp_path) == []
    exported = sorted(path.name for path in (tmp_path / "final").iterdir())
    assert exported == ["EMA-average.safetensors", "EMA-training.safetensors", "export.json", "model.safetensors"]
    assert set(load_file(tmp_path / "final" / "model.safetensors")) == {"0.weight", "0.bias", "3.weight", "3.bias"}


def test_sigterm_at_fit_end_exits_0_and_the_resumed_run_exports(tmp_path: Path) -> None:
    result = run_signalled(tmp_path, "fit_end")

    assert result.returncode == 0, result.stderr
    assert temporaries(tmp_path) == []
    assert list_checkpoints(tmp_path)[-1].name == "ep4-ba48-rank0.pt"  # the final checkpoint was written first
    assert not (tmp_path / "final" / "export.json").exists()  # the export was left to the resumed run

    build(tmp_path, "ema", autoresume=True).fit()
    assert (tmp_path / "final" / "export.json").is_file()
