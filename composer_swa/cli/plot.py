"""The curves of a finished run: training loss, evaluation loss and accuracy, averaging windows shaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["plot_run", "read_metrics"]


def read_metrics(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` from ``run_dir/metrics.jsonl``."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.jsonl in {str(run_dir)!r}; give the folder of a finished swa-train run")
    series: dict[str, list[tuple[int, float]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for key, value in record.items():
            if "/" in key and isinstance(value, (int, float)):
                series.setdefault(key, []).append((int(record["step"]), float(value)))
    return series


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


def plot_run(run_dir: Path, output: Path | None = None) -> Path:
    """Writes a PNG (default ``run_dir/curves.png``) and returns its path.

    Raises:
        ImportError: When matplotlib is missing, with the command that installs it.
        FileNotFoundError: When ``run_dir`` holds no metrics.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install 'composer_swa[plot]'") from error
    run_dir = Path(run_dir)
    series = read_metrics(run_dir)
    panels = [name for name in ("train/loss", "eval/loss", "eval/accuracy") if name in series]
    if not panels:
        raise ValueError(f"{str(run_dir / 'metrics.jsonl')!r} holds no train/loss or eval metrics to plot")
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    colours = ["tab:orange", "tab:green", "tab:purple", "tab:red"]
    for axis, name in zip(axes[0], panels):
        steps, values = zip(*series[name])
        axis.plot(steps, values, marker="." if name.startswith("eval") else None)
        for index, (label, start, end) in enumerate(_windows(run_dir)):
            axis.axvspan(start, end, alpha=0.15, color=colours[index % len(colours)], label=f"{label} window")
        axis.set_title(name)
        axis.set_xlabel("batch")
    axes[0][0].legend(loc="best", fontsize="small")
    figure.tight_layout()
    target = output or run_dir / "curves.png"
    figure.savefig(target, dpi=120)
    plt.close(figure)
    return target
