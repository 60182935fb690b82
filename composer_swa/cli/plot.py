"""The curves of finished runs on shared axes: loss (log scale), accuracy, and the learning rate.

A run folder may hold sub-runs (``baseline/``, or one folder per config of ``swa-train A.yaml B.yaml``):
every run found is drawn on the same axes, each in its own colour, with its averaging windows shaded.
A run whose loss became NaN is drawn up to its last finite point, marked there with a red x.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__: list[str] = []

_LOSSES = ("train/loss", "eval/loss")


def read_metrics(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` from ``run_dir/metrics.jsonl``; a ``null`` (non-finite) value reads as NaN."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.jsonl in {str(run_dir)!r}; give the folder of a finished swa-train run")
    series: dict[str, list[tuple[int, float]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for key, value in record.items():
            if "/" in key and (value is None or isinstance(value, (int, float))):
                series.setdefault(key, []).append((int(record["step"]), math.nan if value is None else float(value)))
    return series


def find_runs(run_dirs: Sequence[Path]) -> dict[str, Path]:
    """Every run in ``run_dirs`` by label: each folder with a ``metrics.jsonl``, and its sub-folders that have one.

    Raises:
        FileNotFoundError: When a folder holds no run at all.
    """
    runs: dict[str, Path] = {}
    for run_dir in map(Path, run_dirs):
        found = [run_dir] if (run_dir / "metrics.jsonl").is_file() else []
        found += sorted(path.parent for path in run_dir.glob("*/metrics.jsonl")) if run_dir.is_dir() else []
        found += sorted(path.parent for path in run_dir.glob("*/baseline/metrics.jsonl")) if run_dir.is_dir() else []
        if not found:
            raise FileNotFoundError(
                f"no metrics.jsonl in {str(run_dir)!r} or its sub-folders; give the folder of a finished swa-train run"
            )
        for folder in found:
            label = run_dir.name if folder == run_dir else f"{run_dir.name}/{folder.relative_to(run_dir)}"
            runs[label] = folder
    return runs


def _windows(run_dir: Path) -> list[tuple[str, int, int]]:
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        return []
    summary: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
    windows = []
    for key, facts in summary.get("algorithms", {}).items():
        if "window_batches" in facts:
            windows.append((key, *facts["window_batches"]))
        elif "start_batch" in facts:
            windows.append((key, facts["start_batch"], summary["batches"]))
    return windows


def _finite_prefix(points: list[tuple[int, float]]) -> tuple[list[tuple[int, float]], int | None]:
    """The points before the first non-finite value, and that value's step (``None`` when all are finite)."""
    for index, (step, value) in enumerate(points):
        if not math.isfinite(value):
            return points[:index], step
    return points, None


def curves_figure(run_dirs: Sequence[Path]) -> Figure:
    """The figure of :func:`plot_run`: panels ``loss`` (log scale), ``eval/accuracy`` (if logged) and ``learning rate``.

    Example:
        >>> figure = curves_figure(["runs/mnist1d_swa-20261121-120000"])  # doctest: +SKIP
        >>> [axis.get_title() for axis in figure.axes]  # doctest: +SKIP
        ['loss (log scale)', 'eval/accuracy', 'learning rate']
    """
    from matplotlib.figure import Figure

    runs = {label: (folder, read_metrics(folder)) for label, folder in find_runs(run_dirs).items()}
    has = {name: any(name in series for _, series in runs.values()) for name in (*_LOSSES, "eval/accuracy", "train/lr")}
    if not (has["train/loss"] or has["eval/loss"] or has["eval/accuracy"]):
        raise ValueError(f"the metrics.jsonl of {sorted(runs)} hold no train/loss or eval metrics to plot")
    panels = ["loss"] * (has["train/loss"] or has["eval/loss"]) + ["eval/accuracy"] * has["eval/accuracy"]
    panels += ["train/lr"] * has["train/lr"]
    figure = Figure(figsize=(5 * len(panels), 3.8))
    axes = dict(zip(panels, figure.subplots(1, len(panels), squeeze=False)[0]))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    for index, (label, (folder, series)) in enumerate(runs.items()):
        colour = colours[index % len(colours)]
        for panel, axis in axes.items():
            names = _LOSSES if panel == "loss" else (panel,)
            for name in (n for n in names if n in series):
                points, nan_step = _finite_prefix(series[name])
                evaluation = name.startswith("eval")
                curve = f"{label} {name}" if panel == "loss" else label
                if points:
                    steps, values = zip(*points)
                    axis.plot(steps, values, color=colour, linestyle="--" if panel == "loss" and evaluation else "-",
                              marker="." if evaluation else None, linewidth=1.2, label=curve)  # fmt: skip
                if nan_step is not None:  # the run diverged: mark where, instead of an empty or truncated-looking line
                    at = points[-1] if points else (nan_step, 1.0)
                    axis.plot([at[0]], [at[1]], "x", color="red", markersize=10, mew=2, label=f"{curve}: NaN at batch {nan_step}")
            for window, start, end in _windows(folder):
                axis.axvspan(start, end, alpha=0.08, color=colour, label=f"{label}: {window} window" if panel == "loss" else None)
    for panel, axis in axes.items():
        axis.set_title({"loss": "loss (log scale)", "train/lr": "learning rate"}.get(panel, panel))
        axis.set_xlabel("batch")
        if panel == "loss":
            axis.set_yscale("log")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="best", fontsize="x-small")
    figure.tight_layout()
    return figure


def plot_run(run_dir: Path | Sequence[Path], output: Path | None = None) -> Path:
    """Writes a PNG of the run(s) (default ``curves.png`` in the first folder) and returns its path.

    Raises:
        ImportError: When matplotlib is missing, with the command that installs it.
        FileNotFoundError: When a folder holds no run.
        ValueError: When the runs logged nothing to plot.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install 'composer_swa[plot]'") from error
    run_dirs = [Path(run_dir)] if isinstance(run_dir, (str, Path)) else [Path(folder) for folder in run_dir]
    figure = curves_figure(run_dirs)
    target = Path(output) if output is not None else run_dirs[0] / "curves.png"
    figure.savefig(target, dpi=120)
    return target
