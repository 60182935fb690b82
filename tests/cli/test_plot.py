"""``swa-train plot``: log-scale loss, an LR panel, every run on shared axes, a NaN run marked (real matplotlib)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from composer_swa.cli.plot import curves_figure, read_metrics
from composer_swa.cli.train import main


def write_run(folder: Path, losses: list[float | None], lrs: list[float], window: tuple[int, int] | None = None) -> None:
    folder.mkdir(parents=True)
    records = [{"step": step, "train/loss": loss, "train/lr": lr} for step, (loss, lr) in enumerate(zip(losses, lrs), 1)]
    records.append({"step": len(losses), "eval/loss": 0.5, "eval/accuracy": 0.8})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if window is not None:
        summary = {"batches": len(losses), "algorithms": {"SWA": {"window_batches": list(window)}}}
        (folder / "summary.json").write_text(json.dumps(summary))


def test_null_metrics_read_as_nan(tmp_path: Path) -> None:
    write_run(tmp_path / "run", [1.0, None], [0.1, 0.1])
    loss = read_metrics(tmp_path / "run")["train/loss"]
    assert loss[0] == (1, 1.0) and loss[1][0] == 2 and math.isnan(loss[1][1])


def test_a_parent_folder_plots_every_sub_run_on_shared_axes_with_a_nan_run_marked(tmp_path: Path) -> None:
    write_run(tmp_path / "runs" / "constant", [2.0, 1.0, 0.5, 0.4], [0.1, 0.1, 0.1, 0.1], window=(2, 4))
    write_run(tmp_path / "runs" / "cosine", [2.0, 1.5, None, None], [0.1, 0.05, 0.01, 0.0])
    figure = curves_figure([tmp_path / "runs"])
    loss, accuracy, lr = figure.axes
    assert [a.get_title() for a in figure.axes] == ["loss (log scale)", "eval/accuracy", "learning rate"]
    assert loss.get_yscale() == "log" and lr.get_yscale() == "linear"
    lines = {line.get_label(): line for line in loss.get_lines()}
    assert list(lines["runs/constant train/loss"].get_ydata()) == [2.0, 1.0, 0.5, 0.4]
    assert list(lines["runs/cosine train/loss"].get_xdata()) == [1, 2]  # drawn up to the last finite point
    marker = lines["runs/cosine train/loss: NaN at batch 3"]
    assert marker.get_marker() == "x" and marker.get_color() == "red"
    assert (list(marker.get_xdata()), list(marker.get_ydata())) == ([2], [1.5])
    legend = [text.get_text() for text in loss.get_legend().get_texts()]
    assert "runs/cosine train/loss: NaN at batch 3" in legend and "runs/constant: SWA window" in legend
    assert {line.get_label() for line in lr.get_lines()} == {"runs/constant", "runs/cosine"}
    assert list(lr.get_lines()[1].get_ydata()) == [0.1, 0.05, 0.01, 0.0]
    assert len(accuracy.get_lines()) == 2


def test_the_cli_plots_several_run_dirs_into_one_png(tmp_path: Path) -> None:
    write_run(tmp_path / "a", [1.0, 0.5], [0.1, 0.1])
    write_run(tmp_path / "a" / "baseline", [1.0, 0.7], [0.1, 0.1])
    write_run(tmp_path / "b", [1.0, 0.6], [0.1, 0.1])
    figure = curves_figure([tmp_path / "a", tmp_path / "b"])
    labels = {line.get_label() for line in figure.axes[0].get_lines()}
    assert {"a train/loss", "a/baseline train/loss", "b train/loss"} <= labels
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("missing", ["nowhere", "empty"])
def test_a_folder_without_runs_exits_2(tmp_path: Path, missing: str) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["plot", str(tmp_path / missing)])
    assert result.exit_code == 2 and "no metrics.jsonl" in result.output and "Traceback" not in result.output
