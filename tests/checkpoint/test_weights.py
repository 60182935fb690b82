"""load_weights_only: foreign weights fit the model when only a wrapper's prefix differs, and nothing else is renamed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from composer_swa.checkpoint import CheckpointError
from composer_swa.checkpoint.weights import load_model_weights
from tests.helpers import ChildNamedModule, OnlyChildModule, make_loader, mlp, prefixed_weights, quiet


def test_load_weights_only_strips_a_prefix_on_every_key_and_keeps_a_child_named_module(tmp_path: Path) -> None:
    source = torch.nn.Linear(2, 2)
    save_file(prefixed_weights(source, "module."), tmp_path / "ddp.safetensors")
    torch.save({"state_dict": prefixed_weights(source, "module._orig_mod.")}, tmp_path / "ddp_compiled.pt")
    for path in (tmp_path / "ddp.safetensors", tmp_path / "ddp_compiled.pt"):
        target = torch.nn.Linear(2, 2)
        note = load_model_weights(target, path)
        assert note is not None and "stripped the wrapper prefix 'module." in note and str(path) in note
        for name, tensor in source.state_dict().items():
            assert torch.equal(target.state_dict()[name], tensor)

    # A model that really has a child named module: its keys stay, nothing is reported stripped.
    own = OnlyChildModule()
    save_file(prefixed_weights(own, scale=2.0), tmp_path / "own.safetensors")
    target_own = OnlyChildModule()
    assert load_model_weights(target_own, tmp_path / "own.safetensors") is None
    torch.testing.assert_close(target_own.module.weight, own.module.weight * 2)
    mixed = ChildNamedModule()
    save_file(prefixed_weights(mixed, scale=3.0), tmp_path / "mixed.safetensors")
    target_mixed = ChildNamedModule()
    assert load_model_weights(target_mixed, tmp_path / "mixed.safetensors") is None
    torch.testing.assert_close(target_mixed.weight, mixed.weight * 3)
    torch.testing.assert_close(target_mixed.module.weight, mixed.module.weight * 3)

    # Prefixed keys that do not fit even stripped: a clean error that names the file.
    save_file({"module.other": torch.ones(1)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match=r"other.safetensors' do not fit the model"):
        load_model_weights(torch.nn.Linear(2, 2), tmp_path / "other.safetensors")


def test_tied_weights_stored_once_load_through_a_stripped_prefix(tmp_path: Path) -> None:
    tied = torch.nn.Sequential(torch.nn.Embedding(3, 2), torch.nn.Linear(2, 3, bias=False))
    tied[1].weight = tied[0].weight
    save_file({"module.0.weight": torch.arange(6.0).reshape(3, 2)}, tmp_path / "tied.safetensors")
    assert load_model_weights(tied, tmp_path / "tied.safetensors") is not None
    assert torch.equal(tied[1].weight, torch.arange(6.0).reshape(3, 2))


def test_trainer_load_weights_only_logs_what_it_stripped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from composer_swa import Trainer
    from composer_swa.loggers import ConsoleLogger

    source = mlp(seed=3)
    save_file(prefixed_weights(source, "module."), tmp_path / "ddp.safetensors")
    model = mlp()
    trainer = Trainer(model, make_loader(), "1ba", load_path=tmp_path / "ddp.safetensors", load_weights_only=True,
                      **quiet(loggers=[ConsoleLogger()], optimizers=torch.optim.SGD(model.parameters(), lr=0.0)))  # fmt: skip
    trainer.fit()
    assert "stripped the wrapper prefix 'module.' from every key of" in capsys.readouterr().out
    for name, tensor in source.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)
