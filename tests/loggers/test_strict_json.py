"""metrics.jsonl, summary.json and export.json are strict JSON: NaN and infinities are written as null."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from composer_swa import State
from composer_swa.checkpoint import export_weights
from composer_swa.cli.run_folder import write_summary
from composer_swa.loggers import JSONLinesLogger
from composer_swa.loggers.strict_json import strict_dumps


def strict_loads(text: str) -> Any:
    """A parser as strict as JSON.parse or jq: the bare words NaN, Infinity and -Infinity are errors."""

    def refuse(word: str) -> None:
        raise ValueError(f"not JSON: {word}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_metrics_lines_write_non_finite_values_as_null(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "metrics.jsonl"
    log = JSONLinesLogger(path)
    log.log_metrics({"train/loss": bad, "train/lr": 0.1}, step=3)
    log.close()

    record = strict_loads(path.read_text())
    assert record["train/loss"] is None and record["train/lr"] == 0.1 and record["step"] == 3


def test_summary_json_is_strict_at_any_depth(tmp_path: Path) -> None:
    summary = {"final_metrics": {"eval/loss": float("nan"), "eval/accuracy": 0.25}, "history": [1.0, float("-inf")]}
    write_summary(summary, tmp_path / "summary.json")

    assert strict_loads((tmp_path / "summary.json").read_text()) == {
        "final_metrics": {"eval/loss": None, "eval/accuracy": 0.25},
        "history": [1.0, None],
    }


def test_export_json_is_strict(tmp_path: Path) -> None:
    state = State(model=torch.nn.Linear(2, 2), max_duration="1ep", train_dataloader=[0])
    path = export_weights(state, tmp_path, extra={"eval/loss": float("nan")})

    assert strict_loads(path.read_text())["eval/loss"] is None


def test_strict_dumps_keeps_finite_numbers_exactly() -> None:
    values = {"a": 1e-300, "b": -2.5, "c": 3, "d": [math.pi, None, "NaN"]}
    assert strict_loads(strict_dumps(values)) == values
