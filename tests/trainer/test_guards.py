"""A NaN loss or weight stops the run before anything non-finite is saved, averaged or exported; so does a
model whose parameters change during training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa import EMA, Callback, State, Trainer
from composer_swa.checkpoint import export_weights, list_checkpoints, read_checkpoint
from composer_swa.checkpoint.finite import NonFiniteError
from composer_swa.loggers import Logger
from composer_swa.trainer.guards import ModelStructureError
from tests.helpers import mlp, quiet

BATCH = 4


def loader_with_nan_at(batch: int | None, batches: int = 12) -> DataLoader:
    """Fixed batches of 4; the ``batch``-th (counted from 1) holds a NaN input (none with ``None``)."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batches * BATCH, 4, generator=generator)
    if batch is not None:
        inputs[(batch - 1) * BATCH, 0] = float("nan")
    return DataLoader(TensorDataset(inputs, torch.randint(0, 3, (batches * BATCH,), generator=generator)), batch_size=BATCH)


def all_finite(tensors: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point())


def test_a_nan_loss_stops_the_run_at_the_next_log_interval_naming_the_batch() -> None:
    trainer = Trainer(mlp(), loader_with_nan_at(7), "3ep", log_interval="4ba", **quiet())

    with pytest.raises(NonFiniteError, match=r"the training loss is nan at batch 7 \(counted from 1\)"):
        trainer.fit()
    assert trainer.state.timestamp.batch_count == 8  # the check waited for the log interval, not the end of the run


def test_a_nan_loss_is_reported_at_the_end_of_a_run_that_never_logs() -> None:
    trainer = Trainer(mlp(), loader_with_nan_at(11), "1ep", log_interval="1000ba", **quiet())

    with pytest.raises(NonFiniteError, match="at batch 11"):
        trainer.fit()


def test_no_checkpoint_holds_nan_and_pruning_keeps_the_last_finite_one(tmp_path: Path) -> None:
    trainer = Trainer(mlp(), loader_with_nan_at(7), "3ep", log_interval="1000ba", save_folder=tmp_path,
                      save_interval="2ba", save_num_checkpoints_to_keep=1, **quiet())  # fmt: skip

    with pytest.raises(NonFiniteError, match="at batch 7"):
        trainer.fit()

    assert [path.name for path in list_checkpoints(tmp_path)] == ["ep0-ba6-rank0.pt"]
    saved = read_checkpoint(tmp_path / "ep0-ba6-rank0.pt")["state"]
    assert all_finite(saved["model"].values())
    assert not (tmp_path / "final").exists()


class BlowUpGradient(Callback):
    """Makes one weight infinite through its gradient at ``batch`` while that batch's loss stays finite."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def after_backward(self, state: State, logger: Logger) -> None:
        if state.timestamp.batch_count + 1 == self.batch:
            next(state.model.parameters()).grad[0, 0] = float("inf")


def test_an_average_never_takes_in_a_non_finite_weight() -> None:
    ema = EMA(half_life="2ba")
    trainer = Trainer(mlp(), loader_with_nan_at(None), "1ep", algorithms=[ema],
                      callbacks=[BlowUpGradient(5)], log_interval="1000ba", **quiet())  # fmt: skip

    with pytest.raises(NonFiniteError, match=r"refusing to update the average at .*'0\.weight' \(shape \(8, 4\)\) holds"):
        trainer.fit()

    assert trainer.state.timestamp.batch_count == 5 and ema.n_updates == 4
    assert ema.average is not None and all_finite(ema.average.state_dict().values())


def test_an_export_of_non_finite_weights_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.bias[1] = float("nan")
    state = State(model=model, max_duration="1ep", train_dataloader=[0])

    with pytest.raises(NonFiniteError, match=r"model\.safetensors.*'bias' \(shape \(2,\)\) holds 1 NaN"):
        export_weights(state, tmp_path / "final")
    assert not (tmp_path / "final").exists() or not list((tmp_path / "final").iterdir())


class GrowsALayer(torch.nn.Module):
    """Replaces a submodule inside forward, from its ``at``-th call on: a bug the optimizer never sees."""

    def __init__(self, at: int, features: int = 4) -> None:
        super().__init__()
        self.a = torch.nn.Linear(features, 16)
        self.b = torch.nn.Linear(16, 3)
        self.calls, self.at = 0, at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            self.b = torch.nn.Linear(16, 5)
        return self.b(torch.relu(self.a(x)))


def test_a_replaced_layer_is_caught_at_the_next_average_update_naming_the_tensor() -> None:
    trainer = Trainer(GrowsALayer(at=3), loader_with_nan_at(None), "1ep", algorithms=[EMA(half_life="4ba")],
                      log_interval="1000ba", **quiet())  # fmt: skip

    with pytest.raises(ModelStructureError, match=r"'b\.weight' changed shape from \(3, 16\) to \(5, 16\)"):
        trainer.fit()
    assert trainer.state.timestamp.batch_count == 3


def test_a_replaced_layer_is_caught_at_the_next_checkpoint(tmp_path: Path) -> None:
    trainer = Trainer(GrowsALayer(at=3), loader_with_nan_at(None), "1ep", log_interval="1000ba", save_folder=tmp_path,
                      save_interval="4ba", **quiet())  # fmt: skip

    with pytest.raises(ModelStructureError, match=r"'b\.bias' changed shape from \(3,\) to \(5,\)"):
        trainer.fit()
    assert list_checkpoints(tmp_path) == []


def test_a_same_shaped_replacement_is_caught_too() -> None:
    class Replaces(GrowsALayer):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.calls + 1 == self.at:
                self.b = torch.nn.Linear(16, 3)  # same shapes, new tensors: the optimizer trains the old ones
            self.calls += 1
            return self.b(torch.relu(self.a(x)))

    trainer = Trainer(Replaces(at=2), loader_with_nan_at(None), "1ep", log_interval="3ba", **quiet())
    with pytest.raises(ModelStructureError, match=r"'b\.weight' \(shape \(3, 16\)\) is a new tensor"):
        trainer.fit()
