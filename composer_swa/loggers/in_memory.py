"""Composer's ``InMemoryLogger``: every metric kept in memory, for notebooks and tests."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["InMemoryLogger"]


class InMemoryLogger:
    """Keeps every logged metric as ``data[name] = [(step, value), ...]`` and the newest in ``most_recent_values``.

    Composer keys each value by a full ``Timestamp``; a destination here is told the batch count
    (``step``), so that is what each pair holds.

    Example:
        >>> memory = InMemoryLogger()
        >>> memory.log_metrics({"eval/accuracy": 0.5}, step=4)
        >>> memory.log_metrics({"eval/accuracy": 0.75}, step=8)
        >>> memory.data["eval/accuracy"], memory.most_recent_values
        ([(4, 0.5), (8, 0.75)], {'eval/accuracy': 0.75})
    """

    def __init__(self) -> None:
        self.data: dict[str, list[tuple[int, float]]] = {}
        self.most_recent_values: dict[str, float] = {}
        self.messages: list[tuple[int, str]] = []

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.data.setdefault(name, []).append((step, value))
        self.most_recent_values.update(metrics)

    def log_message(self, message: str, step: int) -> None:
        self.messages.append((step, message))

    def close(self) -> None:
        pass
