"""The examples README points to must keep running (tiny settings, so this stays fast)."""

from __future__ import annotations

import json
import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setattr(sys, "argv", [name, *argv])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("example", "framework", "accuracy_of", "snapshots"),
    [
        ("plain_loop_swa.py", None, "training", 17),  # batches 96, 100, ..., 160
        ("huggingface_swa.py", "transformers", "eval", 20),  # steps 116, 120, ..., 192 of 6 × 32
        ("lightning_swa.py", "lightning", "training", 17),  # batches 96, 100, ..., 160, as in the plain loop
    ],
)
def test_the_loop_examples_average_their_snapshots_into_an_accurate_model(
    example: str, framework: str | None, accuracy_of: str, snapshots: int,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    if framework is not None:
        pytest.importorskip(framework)
    out = run_example(example, [], monkeypatch, capsys)
    match = re.search(rf"averaged (\d+) snapshots; {accuracy_of} accuracy of the SWA model: ([\d.]+)%", out)
    assert match is not None and int(match.group(1)) == snapshots
    assert float(match.group(2)) > 90


def test_the_main_job_compares_every_average_with_its_live_weights_and_the_cosine_run(tmp_path: Path) -> None:
    """README's first command, shortened to 120 batches: one table with the constant-LR run's live weights,
    its EMA, LAWA and SWA, and the cosine run; SWA's row is the final model and equals its exported average."""
    from click.testing import CliRunner

    from composer_swa.cli.train import main

    short = ["--set", "trainer.max_duration=120ba", "--set", "data.eval.eval_fraction=0.002"]
    configs = [str(EXAMPLES / "char_stdlib_constant.yaml"), str(EXAMPLES / "char_stdlib_cosine.yaml")]
    result = CliRunner().invoke(main, [*configs, *short, "--run-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = [line.split()[:2] for line in result.output.splitlines() if line.startswith("char_stdlib_")]
    names = [" ".join(row) for row in rows]
    assert names == [
        "char_stdlib_constant: live",
        "char_stdlib_constant: EMA",
        "char_stdlib_constant: LAWA",
        "char_stdlib_constant: SWA",
        "char_stdlib_cosine: live",
    ]
    summary = json.loads((tmp_path / "char_stdlib_constant" / "summary.json").read_text())
    by_weights = summary["final_metrics_by_weights"]
    assert summary["final_weights"] == "SWA"
    assert by_weights["SWA"] == summary["final_metrics"]  # the final model is SWA's average
    assert len({round(metrics["eval/loss"], 6) for metrics in by_weights.values()}) == 4  # four different weights
