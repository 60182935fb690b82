"""benchmarks/device_check.py: its --cpu dry run runs every section's code path and reports through its exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import device_check
from benchmarks._device_perf import Row


def rows_of(path: Path) -> dict[str, dict]:
    return {row["check"]: row for row in json.loads(path.read_text())["rows"]}


def test_in_process_sections_pass_on_the_cpu_and_write_their_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "figures.json"
    assert device_check.main(["--cpu", "--sections", "1,3,4", "--json", str(path)]) == 0
    rows = rows_of(path)
    checks = [row for row in rows.values() if row["ok"] is not None]
    assert len(checks) == 7 and all(row["ok"] for row in checks)  # four averages checks, two SWAG ones, the batch-norm pass
    assert rows["SWAG deviations vs fp64, max rel. error"]["error"] < 1e-5
    assert rows["bf16 model: averages kept in fp32"]["ok"] and rows["SWA mean vs fp64, max rel. error"]["error"] < 1e-5
    kernel = [row for name, row in rows.items() if name.endswith("composer_swa") and "x_limit" in row]
    assert len(kernel) == 4 and all(row["ms"] > 0 for row in kernel)  # two shapes, fp32 and bf16 sources
    assert {row["mode"] for row in rows.values() if "steps_per_s" in row} == {"eager"}  # no torch.compile on the CPU
    assert "1. correctness vs CPU fp64" in capsys.readouterr().out


def test_sections_that_launch_processes_pass_on_the_cpu(tmp_path: Path) -> None:
    path = tmp_path / "figures.json"
    assert device_check.main(["--cpu", "--sections", "2,5,6", "--json", str(path)]) == 0
    rows = rows_of(path)
    assert rows["resumed run equals the uninterrupted one"]["value"].startswith("bit-exact: True")
    assert rows["collectives SWA's averaging adds"]["value"] == "0 (target 0)"
    assert rows["joined the process group"]["value"] == "backend gloo, world size 1"
    assert rows["the average equals torch's fp32 mean in bf16"]["ok"]


def test_a_failed_check_makes_the_exit_code_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(device_check.SECTIONS, "1", lambda sizes, folder: [Row("a check", "wrong", ok=False)])
    path = tmp_path / "figures.json"
    assert device_check.main(["--cpu", "--sections", "1", "--json", str(path)]) == 1
    assert rows_of(path)["a check"]["ok"] is False


def test_unknown_sections_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert device_check.main(["--cpu", "--sections", "1,9", "--json", str(tmp_path / "f.json")]) == 2
    assert "--sections must name sections 1-6, got ['9']" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the default run is the real check")
def test_without_cuda_the_default_run_points_to_the_cpu_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert device_check.main([]) == 2
    assert "--cpu" in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the correctness and resume sections on the GPU")
def test_correctness_and_resume_on_cuda(tmp_path: Path) -> None:
    assert device_check.main(["--sections", "1,2", "--json", str(tmp_path / "figures.json")]) == 0
