"""A user's own loop over the engine, for the algorithm tests (the shared helpers are in :mod:`tests.helpers`)."""

from __future__ import annotations

from typing import Any

import torch

from composer_swa import Algorithm, State
from composer_swa.events.loop import Loop
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
    """A user's own loop on the driver every loop shares (``Loop``, which AlgorithmRunner wraps; SWATS
    included, which AlgorithmRunner refuses), on the fixed batches of ``make_loader()``.

    With ``stop_at``, it stops after that batch and returns the whole state saved and reloaded
    weights-only; with ``saved``, it resumes from it. Returns the final flat weights.
    """
    batches = list(make_loader())
    state = State(model=model, max_duration=max_duration, train_dataloader=batches, optimizers=[optimizer], algorithms=algorithms)
    loop = Loop(state, Logger())
    if saved is not None:
        state.load_state_dict(saved)
    loop.fit_start()
    while not state.is_finished:
        for x, y in batches[state.timestamp.batch_in_epoch :]:
            loop.batch_start()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            state.optimizers[0].step()  # an algorithm may have replaced the optimizer (SWATS)
            state.optimizers[0].zero_grad()
            loop.batch_end(samples=len(x), tokens=0)
            if state.timestamp.batch_count == stop_at:
                return flat_weights(model), weights_only_round_trip(state.state_dict())
        loop.end_epoch()
    loop.fit_end()
    return flat_weights(model), None
