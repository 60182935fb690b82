"""Metrics as JSON lines: one object per record, easy to load with pandas or jq."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from composer_swa.loggers.strict_json import strict_dumps

__all__ = ["JSONLinesLogger"]


class JSONLinesLogger:
    """Appends ``{"step": ..., "time": ..., <metrics>}`` lines to ``path``.

    Lines are flushed as written, so a run that dies keeps every record up to its last line. Each line
    is strict JSON: a NaN or infinite value is written as ``null``.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl"
        >>> log = JSONLinesLogger(path)
        >>> log.log_metrics({"train/loss": 0.5}, step=10)
        >>> log.close()
        >>> import json
        >>> json.loads(path.read_text())["train/loss"]
        0.5
    """

    def __init__(self, path: str | Path = "metrics.jsonl") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def _write(self, record: dict[str, object]) -> None:
        self._file.write(strict_dumps(record) + "\n")
        self._file.flush()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._write({"step": step, "time": time.time(), **metrics})

    def log_message(self, message: str, step: int) -> None:
        self._write({"step": step, "time": time.time(), "message": message})

    def close(self) -> None:
        self._file.close()
