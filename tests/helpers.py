"""What the tests share: small deterministic data and models, recorders, and a weights-only round trip.

Everything runs on a CPU in seconds. Fixtures live in ``conftest.py`` and build on these; tests import
from here, never from ``conftest.py`` or from one another.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from composer_swa import Algorithm, Callback, Event, State
from composer_swa.loggers import Logger


def make_loader(samples: int = 64, batch_size: int = 16, features: int = 4, classes: int = 3, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, features, generator=generator)
    targets = torch.randint(0, classes, (samples,), generator=generator)
    return DataLoader(TensorDataset(inputs, targets), batch_size=batch_size)


def mlp(features: int = 4, classes: int = 3, batch_norm: bool = False, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Linear(features, 8)]
    if batch_norm:
        layers.append(torch.nn.BatchNorm1d(8))
    layers += [torch.nn.ReLU(), torch.nn.Linear(8, classes)]
    return torch.nn.Sequential(*layers)


class DictDataset(Dataset[dict[str, torch.Tensor]]):
    """Yields ``{"x": ..., "labels": ...}`` like a Hugging Face dataset: the given tensors, or 48 random samples."""

    def __init__(self, x: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> None:
        if x is None or labels is None:
            generator = torch.Generator().manual_seed(1)
            x = torch.randn(48, 4, generator=generator)
            labels = torch.randint(0, 2, (48,), generator=generator)
        self.x, self.labels = x, labels

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.labels[index]}


class DictModel(torch.nn.Module):
    """Returns ``{"logits", "loss"}`` like a Hugging Face model given labels."""

    def __init__(self, features: int = 4) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(features, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.linear(x)
        return {"logits": logits, "loss": torch.nn.functional.cross_entropy(logits, labels)}


class ChildNamedModule(torch.nn.Module):
    """Like Composer's ``ComposerClassifier``: a child called ``module``, next to a parameter called ``weight``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.module = torch.nn.Linear(4, 4, bias=False)
        self.weight = torch.nn.Parameter(torch.randn(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x) @ self.weight.T


class OnlyChildModule(torch.nn.Module):
    """Like ``ComposerClassifier``: every key of its state dict starts with its own child ``module``."""

    def __init__(self) -> None:
        super().__init__()
        self.module = torch.nn.Linear(2, 2)


def prefixed_weights(model: torch.nn.Module, prefix: str = "", scale: float = 1.0) -> dict[str, torch.Tensor]:
    return {prefix + name: (tensor * scale).contiguous() for name, tensor in model.state_dict().items()}


def quiet(**kwargs: Any) -> dict[str, Any]:
    """Trainer arguments for a silent run: no progress bar, no loggers; ``kwargs`` added."""
    return {"progress_bar": False, "loggers": [], **kwargs}


def flat_weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().double().flatten().clone() for p in model.parameters()])


def assert_equal_weights(resumed: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert sorted(resumed) == sorted(reference)
    different = [name for name in reference if not torch.equal(resumed[name], reference[name])]
    assert not different, f"not bit-for-bit equal: {different}"


def weights_only_round_trip(state: Any) -> Any:
    """``state`` saved with ``torch.save`` and read back with ``torch.load(..., weights_only=True)``, as a checkpoint is."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


class WeightRecorder(Algorithm):
    """Records the live weights at FIT_START and every BATCH_END; list it first, before any algorithm swaps them."""

    events: ClassVar[frozenset[Event]] = frozenset({Event.FIT_START, Event.BATCH_END})

    def __init__(self) -> None:
        self.weights: dict[int, torch.Tensor] = {}

    def match(self, event: Event, state: State) -> bool:
        return True

    def apply(self, event: Event, state: State, logger: Logger) -> None:
        self.weights[state.timestamp.batch_count] = flat_weights(state.model)


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


def fit_evaluating_every_epoch(algorithm: Algorithm) -> tuple[torch.nn.Module, WeightRecorder, EvalWeights]:
    """Trains ``mlp()`` for 2 epochs with ``algorithm``, evaluating each; returns the model and the records."""
    from composer_swa import Trainer

    model, recorder, seen = mlp(), WeightRecorder(), EvalWeights()
    trainer = Trainer(
        model, make_loader(), "2ep", eval_dataloader=make_loader(seed=1), eval_interval="1ep",
        algorithms=[recorder, algorithm], callbacks=[seen], **quiet(),
    )  # fmt: skip
    trainer.fit()
    return model, recorder, seen


def train_recording_weights(
    runner: Any, model: torch.nn.Module, optimizer: torch.optim.Optimizer, stop_at: int | None = None
) -> dict[int, dict[str, torch.Tensor]]:
    """Cross-entropy SGD steps through ``runner`` (an AlgorithmRunner) over its train batches until the run is
    finished, or after batch ``stop_at``; returns the model's weights after every step, by step (from 1)."""
    data = list(runner.state.train_dataloader)
    recorded: dict[int, dict[str, torch.Tensor]] = {}
    while not runner.is_finished:
        x, y = data[runner.state.timestamp.batch_in_epoch]
        runner.batch_start()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        recorded[runner.state.timestamp.batch_count + 1] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        runner.batch_end(samples=len(x))
        if runner.state.timestamp.batch_count == stop_at:
            break
    return recorded


class BatchStartLRs(Callback):
    """The LR each optimizer step uses: the first optimizer's first group, read at BATCH_START."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def batch_start(self, state: State, logger: Logger) -> None:
        self.lrs.append(state.optimizers[0].param_groups[0]["lr"])
