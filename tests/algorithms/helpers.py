"""Recorders shared by the algorithm tests: they capture what happened, for independent references."""

from __future__ import annotations

import io
from typing import Any, ClassVar

import torch

from composer_swa import Algorithm, Callback, Event, State
from composer_swa.loggers import Logger


def quiet(**kwargs: Any) -> dict[str, Any]:
    return {"progress_bar": False, "loggers": [], **kwargs}


def flat_weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().double().flatten().clone() for p in model.parameters()])


class WeightRecorder(Algorithm):
    """Records the live weights at FIT_START and every BATCH_END; list it first, before any algorithm swaps them."""

    events: ClassVar[frozenset[Event]] = frozenset({Event.FIT_START, Event.BATCH_END})

    def __init__(self) -> None:
        self.weights: dict[int, torch.Tensor] = {}

    def match(self, event: Event, state: State) -> bool:
        return True

    def apply(self, event: Event, state: State, logger: Logger) -> None:
        self.weights[state.timestamp.batch_count] = flat_weights(state.model)


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
    from composer_swa.events.loop import Loop
    from tests.conftest import make_loader

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
                buffer = io.BytesIO()
                torch.save(state.state_dict(), buffer)
                buffer.seek(0)
                return flat_weights(model), torch.load(buffer, weights_only=True)
        loop.end_epoch()
    loop.fit_end()
    return flat_weights(model), None


class Crash(Callback):
    """Raises after batch ``at``, as a killed process stops: what the last periodic checkpoint holds survives."""

    def __init__(self, at: int) -> None:
        self.at = at

    def batch_end(self, state: State, logger: Logger) -> None:
        if state.timestamp.batch_count == self.at:
            raise RuntimeError("killed")


class EvalWeights(Callback):
    """Records the weights the model holds at each EVAL_START and after each BATCH_END (callbacks run after algorithms)."""

    def __init__(self) -> None:
        self.during: list[torch.Tensor] = []
        self.after: list[torch.Tensor] = []

    def eval_start(self, state: State, logger: Logger) -> None:
        self.during.append(flat_weights(state.model))

    def batch_end(self, state: State, logger: Logger) -> None:
        self.after.append(flat_weights(state.model))


def fit_evaluating_every_epoch(
    algorithm: Algorithm, max_duration: str = "2ep"
) -> tuple[torch.nn.Module, WeightRecorder, EvalWeights]:
    """Trains ``mlp()`` for 2 epochs with ``algorithm``, evaluating each; returns the model and the records."""
    from composer_swa import Trainer
    from tests.conftest import make_loader, mlp

    model, recorder, seen = mlp(), WeightRecorder(), EvalWeights()
    trainer = Trainer(
        model, make_loader(), "2ep", eval_dataloader=make_loader(seed=1), eval_interval="1ep",
        algorithms=[recorder, algorithm], callbacks=[seen], **quiet(),
    )  # fmt: skip
    trainer.fit()
    return model, recorder, seen
