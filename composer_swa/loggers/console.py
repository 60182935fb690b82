"""Metrics and messages printed to the terminal, without breaking the progress bar."""

from __future__ import annotations

from collections.abc import Mapping

from tqdm import tqdm

__all__ = ["ConsoleLogger"]


def _format_metrics(metrics: Mapping[str, float]) -> str:
    return "  ".join(f"{name}={value:.4g}" for name, value in metrics.items())


class ConsoleLogger:
    """Prints each metrics record and message on one line, prefixed by the batch count.

    Example:
        >>> ConsoleLogger().log_metrics({"eval/accuracy": 0.91}, step=120)
        [batch 120] eval/accuracy=0.91
    """

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        tqdm.write(f"[batch {step}] {_format_metrics(metrics)}")

    def log_message(self, message: str, step: int) -> None:
        tqdm.write(f"[batch {step}] {message}")

    def close(self) -> None:
        pass
