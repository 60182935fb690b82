"""A user's own loop over the engine, for the algorithm tests (the shared helpers are in :mod:`tests.helpers`)."""

from __future__ import annotations

from typing import Any

import torch

from composer_swa import Algorithm, Event, State
from composer_swa.loggers import Logger
from tests.helpers import flat_weights, make_loader, weights_only_round_trip


def train_plain_loop(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    algorithms: list[Algorithm],
    max_duration: str = "3ep",
    stop_at: int | None = None,
    saved: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, dict[str, Any] | None]:
    """A user's own loop driving the engine, on the fixed batches of ``make_loader()``.

    With ``stop_at``, it stops after that batch and returns the whole state saved and reloaded
    weights-only; with ``saved``, it resumes from it. Returns the final flat weights.
    """
    from composer_swa import Engine

    batches = list(make_loader())
    state = State(model=model, max_duration=max_duration, train_dataloader=batches, optimizers=[optimizer], algorithms=algorithms)
    engine = Engine(state, Logger())
    if saved is not None:
        state.load_state_dict(saved)
    engine.run_event(Event.FIT_START)
    while not state.is_finished:
        for x, y in batches[state.timestamp.batch_in_epoch :]:
            engine.run_event(Event.BATCH_START)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            state.optimizers[0].step()  # an algorithm may have replaced the optimizer (SWATS)
            state.optimizers[0].zero_grad()
            state.timestamp.advance_batch(len(x), 0)
            engine.run_event(Event.BATCH_END)
            if state.timestamp.batch_count == stop_at:
                return flat_weights(model), weights_only_round_trip(state.state_dict())
        state.timestamp.advance_epoch()
        engine.run_event(Event.EPOCH_END)
    engine.run_event(Event.FIT_END)
    return flat_weights(model), None
