"""What a run leaves in its folder beside the exported weights: the resolved config and summary.json."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
import yaml

import composer_swa
from composer_swa.atomic_files import atomic_write_text
from composer_swa.config import RunConfig
from composer_swa.loggers.strict_json import strict_dumps
from composer_swa.metrics import metric_values
from composer_swa.state import unique_keys
from composer_swa.trainer import Trainer

__all__: list[str] = []


def write_resolved_config(config: RunConfig, path: Path) -> None:
    """The config with every default filled in: rerunning it reproduces the run."""
    atomic_write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def summarize_run(trainer: Trainer, config_path: str, run_dir: Path, seconds: float) -> dict[str, Any]:
    state = trainer.state
    return {
        "config": config_path,
        "run_dir": str(run_dir),
        "final_metrics": metric_values(state.eval_metrics),
        "batches": state.timestamp.batch_count,
        "epochs": state.timestamp.epoch_count,
        "samples": state.timestamp.sample_count,
        "seconds": round(seconds, 3),
        "algorithms": {key: algorithm.summary() for key, algorithm in zip(unique_keys(state.algorithms), state.algorithms)},
        "trace": {f"{name}@{event}": count for (name, event), count in sorted(trainer.engine.trace.items())},
        "versions": {"composer_swa": composer_swa.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }


def write_summary(summary: dict[str, Any], path: Path) -> None:
    """Writes ``summary`` as strict JSON: a NaN or infinite metric is written as ``null``."""
    atomic_write_text(path, strict_dumps(summary, indent=2) + "\n")
