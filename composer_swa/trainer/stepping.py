"""The optimizer step: gradients unscaled (fp16), AFTER_TRAIN_BATCH, then every optimizer steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from composer_swa.events import Event

if TYPE_CHECKING:
    import torch

    from composer_swa.events import Engine
    from composer_swa.state import State

__all__: list[str] = []


def step_optimizers(state: State, engine: Engine, scaler: torch.amp.GradScaler | None) -> None:
    """Fires AFTER_TRAIN_BATCH on the batch's whole gradient, steps each optimizer and zeroes its gradients.

    Under fp16 the gradients are unscaled first, so an algorithm that clips them at AFTER_TRAIN_BATCH
    compares thresholds with their true size; ``scaler.step`` then skips the unscale it would do itself
    (and still skips the step when they hold an inf or NaN).

    Example:
        >>> import torch
        >>> from composer_swa import Engine, State
        >>> from composer_swa.loggers import Logger
        >>> model = torch.nn.Linear(1, 1, bias=False)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        >>> state = State(model=model, max_duration="1ba", train_dataloader=[0], optimizers=[optimizer])
        >>> model.weight.grad = torch.ones(1, 1)
        >>> before = model.weight.item()
        >>> step_optimizers(state, Engine(state, Logger()), scaler=None)
        >>> round(before - model.weight.item(), 6), model.weight.grad
        (1.0, None)
    """
    if scaler is not None:
        for optimizer in state.optimizers:
            scaler.unscale_(optimizer)
    engine.run_event(Event.AFTER_TRAIN_BATCH)
    for optimizer in state.optimizers:
        if scaler is not None:
            scaler.step(optimizer)
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.update()
