"""``swa-train A.yaml B.yaml [--baseline] [--jobs N]``: several runs, one table of every run's weights.

Each run (a config, or its baseline without algorithms) trains into its own folder. With ``--jobs N``
the runs train in N child processes at once (``python -m composer_swa.cli.train ... --run-dir``), each
with ``cores // N`` threads; their output lines are prefixed with the run's name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from composer_swa.averaging.bn import batch_norm_layers
from composer_swa.config import RunConfig
from composer_swa.trainer import Trainer
from composer_swa.trainer.comparison import BATCH_NORM_NOTE, evaluate_every_weights, final_weights_name

__all__: list[str] = []


@dataclass
class PlannedRun:
    """One column group of the table: a config (or its baseline) trained into ``run_dir``."""

    label: str
    config: RunConfig
    config_path: str
    run_dir: Path
    baseline: bool = False


def plan_runs(configs: Sequence[tuple[str, RunConfig]], folder: Path, baseline: bool) -> list[PlannedRun]:
    """One config: ``folder`` (and ``folder/baseline``), labelled as before; several: ``folder/<stem>`` each."""
    if len(configs) == 1:
        path, config = configs[0]
        runs = [PlannedRun("with algorithms" if baseline else "run", config, path, folder)]
        if baseline:
            runs.append(PlannedRun("baseline (no algorithms)", _without_algorithms(config), path, folder / "baseline", True))
        return runs
    runs, seen = [], set()
    for path, config in configs:
        stem, number = Path(path).stem, 2
        label = stem
        while label in seen:  # two configs of one name get their own folders
            label, number = f"{stem}_{number}", number + 1
        seen.add(label)
        runs.append(PlannedRun(label, config, path, folder / label))
        if baseline:
            runs.append(PlannedRun(f"{label} baseline", _without_algorithms(config), path, folder / label / "baseline", True))
    return runs


def _without_algorithms(config: RunConfig) -> RunConfig:
    """The config without its algorithms; its checkpoints (if it saves any) go to ``save_folder/baseline``."""
    plain = config.model_copy(deep=True)
    plain.algorithms = []
    if plain.trainer.save_folder is not None:
        plain.trainer.save_folder = str(Path(plain.trainer.save_folder) / "baseline")
    return plain


def check_save_folders(runs: Sequence[PlannedRun]) -> None:
    """Refuses runs that would checkpoint into one folder (each run locks its own ``save_folder``)."""
    owners: dict[Path, str] = {}
    for planned in runs:
        if planned.config.trainer.save_folder is None:
            continue
        folder = Path(planned.config.trainer.save_folder).resolve()  # as the Trainer reads it: from the working folder
        if folder in owners:
            raise ValueError(
                f"runs {owners[folder]!r} and {planned.label!r} both checkpoint into trainer.save_folder="
                f"{planned.config.trainer.save_folder!r}; give each config its own save_folder"
            )
        owners[folder] = planned.label


def comparison_summary(trainer: Trainer) -> dict[str, Any]:
    """The keys the table reads from a run's summary.json: every weights' metrics, and which the model holds."""
    by_weights = evaluate_every_weights(trainer)
    return {
        "final_metrics_by_weights": by_weights,
        "final_weights": final_weights_name(trainer),
        "batch_norm_refreshed": len(by_weights) > 1 and bool(batch_norm_layers(trainer.state.model)),
    }


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    """Rows ``RUN: WEIGHTS`` (``*`` marks the weights the final model holds), columns the eval metrics and time."""
    rows: list[tuple[str, dict[str, Any], str]] = []
    for label, summary in summaries.items():
        by_weights = summary.get("final_metrics_by_weights") or {summary.get("final_weights", "live"): summary["final_metrics"]}
        for index, (weights, metrics) in enumerate(by_weights.items()):
            mark = " *" if weights == summary.get("final_weights") and len(by_weights) > 1 else ""
            rows.append((f"{label}: {weights}{mark}", metrics, f"{summary['seconds']:.1f}" if index == 0 else ""))
    metrics = sorted({key for _, values, _ in rows for key in values})
    cells = [["", *metrics, "time (s)"]]
    cells += [[name, *(_number(values[m]) if m in values else "-" for m in metrics), seconds] for name, values, seconds in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    if any(len(s.get("final_metrics_by_weights") or {}) > 1 for s in summaries.values()):
        lines.append("* the weights the run's final model holds")
    if any(s.get("batch_norm_refreshed") for s in summaries.values()):
        lines.append(f"batch norm: {BATCH_NORM_NOTE}")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4f}"  # summary.json writes a NaN metric as null


def run_in_processes(runs: list[PlannedRun], overrides: Sequence[str], jobs: int) -> dict[str, dict[str, Any]]:
    """Trains ``runs`` in ``jobs`` child processes at once; returns each run's summary by label.

    Raises:
        click.ClickException: When a run fails, naming it and its exit status (its output was shown).
    """
    threads = max(1, (os.cpu_count() or 1) // min(jobs, len(runs)))
    lock = threading.Lock()

    def train(run: PlannedRun) -> int:
        command = [sys.executable, "-m", "composer_swa.cli.train", "run", run.config_path, "--child", f"--threads={threads}"]
        command += [f"--set={override}" for override in overrides] + ["--set=trainer.progress_bar=false"]
        command += ["--set=algorithms=[]"] if run.baseline else []
        if run.config.trainer.save_folder is not None:  # a baseline checkpoints into its own folder
            command += [f"--set=trainer.save_folder={run.config.trainer.save_folder}"]
        command += [f"--run-dir={run.run_dir}"]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment) as child:
            assert child.stdout is not None
            for line in child.stdout:
                with lock:
                    click.echo(f"[{run.label}] {line.rstrip()}")
        return child.returncode

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        codes = list(pool.map(train, runs))
    failed = [f"{run.label!r} (exit status {code})" for run, code in zip(runs, codes) if code != 0]
    if failed:
        raise click.ClickException(f"run {', '.join(failed)} failed; its output is above")
    return {run.label: _read_summary(run.run_dir) for run in runs}


def _read_summary(run_dir: Path) -> dict[str, Any]:
    import json

    return dict(json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))
