"""TensorBoard, when the ``tensorboard`` package is installed."""

from __future__ import annotations

from pathlib import Path

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger:
    """Writes metrics as scalars and messages as text to a TensorBoard event folder.

    Args:
        path: The event folder; a relative path is taken inside the run folder by ``swa-train``.

    Raises:
        ImportError: When ``tensorboard`` is missing, with the command that installs it.
    """

    def __init__(self, path: str | Path = "tensorboard") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError("the tensorboard logger needs the tensorboard package: pip install tensorboard") from error
        self._writer = SummaryWriter(str(path))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self._writer.add_scalar(name, value, step)

    def log_message(self, message: str, step: int) -> None:
        self._writer.add_text("messages", message, step)

    def close(self) -> None:
        self._writer.close()
