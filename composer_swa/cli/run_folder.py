"""What a run leaves in its folder: the resolved config, weights as safetensors, and summary.json."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_model

import composer_swa
from composer_swa.config import RunConfig
from composer_swa.state import unique_keys
from composer_swa.trainer import Trainer

__all__ = ["atomic_write", "summarize_run", "write_resolved_config", "write_summary", "write_weights"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Calls ``write(temporary_path)`` in ``path``'s folder, then renames it over ``path``.

    A reader never sees half a file, and a failed write leaves the previous file as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes it private; give it the usual permissions
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def write_resolved_config(config: RunConfig, path: Path) -> None:
    """The config with every default filled in: rerunning it reproduces the run."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    atomic_write(path, lambda temporary: _write_text(temporary, text))


def write_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """The model's state as safetensors (tied weights stored once), written atomically."""
    atomic_write(path, lambda temporary: save_model(model, str(temporary), metadata=metadata))


def summarize_run(trainer: Trainer, config_path: str, run_dir: Path, seconds: float) -> dict[str, Any]:
    state = trainer.state
    return {
        "config": config_path,
        "run_dir": str(run_dir),
        "final_metrics": dict(state.eval_metrics),
        "batches": state.timestamp.batch_count,
        "epochs": state.timestamp.epoch_count,
        "samples": state.timestamp.sample_count,
        "seconds": round(seconds, 3),
        "algorithms": {key: algorithm.summary() for key, algorithm in zip(unique_keys(state.algorithms), state.algorithms)},
        "trace": {f"{name}@{event}": count for (name, event), count in sorted(trainer.engine.trace.items())},
        "versions": {"composer_swa": composer_swa.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }


def write_summary(summary: dict[str, Any], path: Path) -> None:
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write(path, lambda temporary: _write_text(temporary, text))
