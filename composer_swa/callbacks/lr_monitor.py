"""Composer's ``LRMonitor``: every optimizer's learning rates, logged after each batch."""

from __future__ import annotations

from composer_swa.events import Callback
from composer_swa.loggers import Logger
from composer_swa.state import State

__all__ = ["LRMonitor"]


class LRMonitor(Callback):
    """Logs ``lr-<optimizer class>/group<i>`` for each parameter group at every BATCH_END, as Composer's does.

    Example:
        >>> import torch
        >>> from composer_swa.loggers import InMemoryLogger
        >>> model = torch.nn.Linear(2, 1)
        >>> state = State(model=model, max_duration="1ba", train_dataloader=[0],
        ...               optimizers=[torch.optim.SGD(model.parameters(), lr=0.5)])
        >>> memory = InMemoryLogger()
        >>> LRMonitor().batch_end(state, Logger([memory]))
        >>> memory.most_recent_values
        {'lr-SGD/group0': 0.5}
    """

    def batch_end(self, state: State, logger: Logger) -> None:
        for optimizer in state.optimizers:
            name = type(optimizer).__name__
            metrics = {f"lr-{name}/group{index}": float(group["lr"]) for index, group in enumerate(optimizer.param_groups)}
            logger.log_metrics(metrics, step=state.timestamp.batch_count)
