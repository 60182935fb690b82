"""The logger handed to algorithms and callbacks: one call fans out to every destination."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

__all__ = ["Logger", "LoggerDestination"]


class LoggerDestination(Protocol):
    """Where metrics and messages go: the console, a JSON-lines file, TensorBoard."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_message(self, message: str, step: int) -> None: ...

    def close(self) -> None: ...


class Logger:
    """Sends metrics and messages to every destination.

    Example:
        >>> from composer_swa.loggers import ConsoleLogger
        >>> logger = Logger([ConsoleLogger()])
        >>> logger.log_message("hello", step=0)
        [batch 0] hello
    """

    def __init__(self, destinations: Sequence[LoggerDestination] = ()) -> None:
        self.destinations = list(destinations)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for destination in self.destinations:
            destination.log_metrics(metrics, step)

    def log_message(self, message: str, step: int) -> None:
        for destination in self.destinations:
            destination.log_message(message, step)

    def close(self) -> None:
        for destination in self.destinations:
            destination.close()
