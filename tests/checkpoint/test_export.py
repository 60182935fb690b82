"""Export: final weights and averages as safetensors, described by export.json; loading weights only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from composer_swa.checkpoint import Checkpointer, CheckpointError, read_model_weights
from tests.checkpoint.resume_run import build


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("export")
    trainer = build(folder, "swa+ema")
    trainer.fit()
    swa, ema = trainer.state.algorithms
    model = {name: tensor.clone() for name, tensor in trainer.state.model.state_dict().items()}
    assert swa.average is not None and ema.average is not None
    averages = {f"SWA.{k}": v.clone() for k, v in swa.average.state_dict().items()}
    averages |= {f"EMA.{k}": v.clone() for k, v in ema.average.state_dict().items()}
    return folder / "final", model, averages


def test_export_holds_the_final_weights_and_each_average(finished: tuple[Path, dict, dict]) -> None:
    folder, model, averages = finished
    description = json.loads((folder / "export.json").read_text())

    assert sorted(description["files"]) == [
        "EMA-average.safetensors", "SWA-average.safetensors", "SWA-training.safetensors", "model.safetensors",
    ]  # fmt: skip
    assert description["files"]["SWA-average.safetensors"]["n_averaged"] == 19  # batches 12, 14, ..., 48
    assert description["timestamp"]["batch_count"] == 48
    exported = load_file(folder / "model.safetensors")
    assert all(torch.equal(exported[name], model[name]) for name in model)
    for key in ("SWA", "EMA"):
        tensors = load_file(folder / f"{key}-average.safetensors")
        assert all(torch.equal(tensor, averages[f"{key}.{name}"]) for name, tensor in tensors.items())
        with safe_open(folder / f"{key}-average.safetensors", "pt") as file:
            assert file.metadata() == {"algorithm": key, "batch": "48", "epoch": "4"}


def test_load_weights_only_takes_the_exported_weights_and_nothing_else(finished: tuple[Path, dict, dict], tmp_path: Path) -> None:
    folder, _, averages = finished
    trainer = build(tmp_path, "sgd", load_path=folder / "SWA-average.safetensors", load_weights_only=True)
    trainer.checkpointer.restore(trainer.state, trainer.engine, None)

    weights = trainer.state.model.state_dict()
    assert all(torch.equal(weights[name], averages[f"SWA.{name}"]) for name in weights)
    assert trainer.state.timestamp.batch_count == 0


def test_read_model_weights_finds_a_nested_state_dict_and_names_what_is_wrong(tmp_path: Path) -> None:
    weights = {"linear.weight": torch.ones(2, 2)}
    torch.save({"state_dict": weights, "epoch": 3}, tmp_path / "nested.pt")
    torch.save({"step": 3}, tmp_path / "empty.pt")

    assert torch.equal(read_model_weights(tmp_path / "nested.pt")["linear.weight"], weights["linear.weight"])
    with pytest.raises(CheckpointError, match=r"holds no state dict of tensors"):
        read_model_weights(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match=r"weights file .*absent.pt' does not exist"):
        read_model_weights(tmp_path / "absent.pt")


def test_weights_that_do_not_fit_the_model_are_named(tmp_path: Path) -> None:
    torch.save({"other.weight": torch.ones(1)}, tmp_path / "other.pt")
    trainer = build(tmp_path / "run", "sgd", load_path=tmp_path / "other.pt", load_weights_only=True)

    with pytest.raises(CheckpointError, match=r"(?s)the weights in .*other.pt' do not fit the model: .*Missing key"):
        trainer.fit()


def test_the_grad_scaler_state_goes_through_the_checkpoint(tmp_path: Path) -> None:
    saver = build(tmp_path, "sgd")
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    scaler.scale(torch.ones(()))
    scaler.update(new_scale=256.0)
    saver.checkpointer.resolve(saver.state)
    saver.checkpointer.save(saver.state, saver.engine, scaler, epoch_rng={})

    loader = build(tmp_path, "sgd", autoresume=True)
    restored = torch.amp.GradScaler("cpu")
    loader.checkpointer.restore(loader.state, loader.engine, restored)

    assert restored.get_scale() == 256.0 and restored.get_growth_interval() == 7


def test_checkpointer_needs_nothing_when_not_saving() -> None:
    assert not Checkpointer().saving
