"""SWA keeps the live weights it replaces at swa_end: equal to a run without SWA, exported, and in checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from composer_swa import SWA, Trainer
from tests.checkpoint.resume_run import build
from tests.helpers import Crash, make_loader, mlp, quiet


def run(algorithms: list[SWA], **arguments: object) -> Trainer:
    model = mlp(batch_norm=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=12)
    trainer = Trainer(model, make_loader(), "3ep", optimizers=optimizer, schedulers=schedule, algorithms=algorithms, seed=0,
                      step_schedulers_every_batch=True, **quiet(**arguments))  # fmt: skip
    trainer.fit()
    return trainer


def test_the_training_weights_are_those_of_the_same_run_without_swa(tmp_path: Path) -> None:
    # With swa_end at the end, SWA only observes until the swap: the live weights follow the plain run's trajectory.
    swa = SWA(swa_start="0.5dur", update_interval="1ba")
    with_swa = run([swa], save_folder=tmp_path, save_interval="1ep")
    plain = run([]).state.model.state_dict()
    assert swa.training_weights is not None and swa.training_weights.keys() == plain.keys()
    for name, tensor in plain.items():
        assert torch.equal(swa.training_weights[name], tensor), name
    assert not torch.equal(with_swa.state.model.state_dict()["0.weight"], plain["0.weight"])  # the model holds the average

    exported = load_file(tmp_path / "final" / "SWA-training.safetensors")
    assert exported.keys() == plain.keys()
    for name, tensor in plain.items():
        assert torch.equal(exported[name], tensor), name


def test_no_training_weights_before_swa_end() -> None:
    swa = SWA(swa_start="0.25dur", update_interval="1ba")
    trainer = Trainer(mlp(), make_loader(), "4ba", algorithms=[swa], callbacks=[Crash(3)], **quiet())
    with pytest.raises(RuntimeError, match="killed"):  # the swap would come at batch 4
        trainer.fit()
    assert swa.n_averaged == 3
    assert swa.training_weights is None and swa.state_dict()["training_weights"] is None


def test_a_checkpoint_after_swa_end_holds_them_and_a_resumed_run_ends_with_them(tmp_path: Path) -> None:
    reference = build(tmp_path / "reference", "swa")  # swa_end at batch 36 of 48; checkpoints every 5 batches
    reference.fit()
    expected = reference.state.algorithms[0].training_weights
    assert expected is not None

    with pytest.raises(RuntimeError, match="killed"):
        build(tmp_path / "run", "swa", callbacks=[Crash(43)]).fit()  # the newest checkpoint is at batch 40
    resumed = build(tmp_path / "run", "swa", autoresume=True)
    resumed.fit()
    kept = resumed.state.algorithms[0].training_weights
    assert kept is not None and kept.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(kept[name], tensor), name
