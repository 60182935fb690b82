"""PostHocEMA: the stored snapshots are the power EMAs of the recorded weights, listed in the index, resumable."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from composer_swa import Trainer
from composer_swa.algorithms.posthoc_ema import PostHocEMA
from composer_swa.averaging.posthoc_index import read_index
from composer_swa.integrations import AlgorithmRunner
from composer_swa.trainer.comparison import evaluate_every_weights
from tests.helpers import make_loader, mlp, train_recording_weights

SIGMA_RELS = (0.05, 0.10)


def gamma_of(sigma_rel: float) -> float:
    """γ from σ_rel by bisection on the paper's relation (independent of the cubic's roots)."""
    low, high = (np.sqrt(5.0) - 3.0) / 2.0, 1e6  # σ_rel falls from its peak as γ grows from here
    for _ in range(200):
        middle = (low + high) / 2.0
        if np.sqrt((middle + 1) / ((middle + 2) ** 2 * (middle + 3))) > sigma_rel:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def run(
    folder: Path, batches: int, stop_at: int | None = None, checkpoint: bytes | None = None, **kwargs: Any
) -> tuple[PostHocEMA, dict[int, dict[str, torch.Tensor]], bytes | None]:
    """Trains an MLP with batch norm in a plain loop; returns the algorithm, the weights after each step, and
    (with ``stop_at``) everything a checkpoint after that step holds, as the bytes of the file; ``checkpoint``
    resumes from such bytes (loaded weights-only)."""
    model = mlp(batch_norm=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    data = list(make_loader())  # 4 batches an epoch
    posthoc = PostHocEMA(sigma_rels=SIGMA_RELS, snapshot_dir=folder, **{"snapshot_interval": "5ba", **kwargs})
    runner = AlgorithmRunner([posthoc], model, optimizer, data, max_duration=f"{batches}ba", loggers=[])
    if checkpoint is not None:
        saved = torch.load(io.BytesIO(checkpoint), weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        runner.load_state_dict(saved["runner"])
    runner.fit_start()
    recorded = train_recording_weights(runner, model, optimizer, stop_at)
    if stop_at is not None and runner.state.timestamp.batch_count == stop_at:
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "runner": runner.state_dict()}, buffer)
        return posthoc, recorded, buffer.getvalue()
    runner.fit_end()
    return posthoc, recorded, None


def power_ema(recorded: dict[int, dict[str, torch.Tensor]], name: str, gamma: float, through: int) -> np.ndarray:
    """The power EMA of ``name`` in float64, run step by step from step 1."""
    ema = recorded[1][name].double().numpy()
    for t in range(2, through + 1):
        beta = (1.0 - 1.0 / t) ** (gamma + 1.0)
        ema = beta * ema + (1.0 - beta) * recorded[t][name].double().numpy()
    return ema


def test_snapshots_are_the_power_emas_of_the_recorded_weights(tmp_path: Path) -> None:
    posthoc, recorded, _ = run(tmp_path, batches=23)
    entries = read_index(tmp_path)
    steps = [5, 10, 15, 20, 23]  # every 5 batches, and the last batch at FIT_END
    assert [(entry.step, entry.sigma_rel) for entry in entries] == [(step, s) for step in steps for s in SIGMA_RELS]
    assert sorted(path.name for path in tmp_path.glob("*.safetensors")) == sorted(entry.file for entry in entries)
    assert entries == posthoc.snapshots
    for entry in entries:
        gamma = gamma_of(entry.sigma_rel)
        assert entry.gamma == pytest.approx(gamma, rel=1e-10)
        saved = load_file(tmp_path / entry.file)
        assert set(saved) == set(recorded[1])
        for name, tensor in saved.items():
            if tensor.is_floating_point():
                assert tensor.dtype is torch.float32
                expected = power_ema(recorded, name, gamma, entry.step)
                np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-5, atol=1e-6, err_msg=name)
            else:  # num_batches_tracked: the value at the snapshot's step
                assert torch.equal(tensor, recorded[entry.step][name])
    assert posthoc.summary()["n_snapshots"] == len(entries) and posthoc.summary()["last_step"] == 23


def test_epoch_interval_snapshots_at_epoch_end(tmp_path: Path) -> None:
    run(tmp_path, batches=10, snapshot_interval="1ep")
    assert [entry.step for entry in read_index(tmp_path)] == [4, 4, 8, 8, 10, 10]


@pytest.mark.parametrize("crash_after", [None, 16])
def test_a_resumed_run_continues_the_same_snapshot_set_exactly(tmp_path: Path, crash_after: int | None) -> None:
    """Resumed from a checkpoint after batch 12 (with ``crash_after``, after an attempt that went on past
    the checkpoint and wrote the snapshot at 15 before it died): the folder ends as an uninterrupted run's, bit for bit."""
    straight, _, _ = run(tmp_path / "straight", batches=27, snapshot_interval="3ba")
    folder = tmp_path / "resumed"
    _, _, saved = run(folder, batches=27, stop_at=12, snapshot_interval="3ba")
    assert saved is not None
    if crash_after is not None:
        run(folder, batches=27, stop_at=crash_after, checkpoint=saved, snapshot_interval="3ba")
        assert 15 in {entry.step for entry in read_index(folder)}
    resumed, _, _ = run(folder, batches=27, checkpoint=saved, snapshot_interval="3ba")
    assert read_index(folder) == read_index(tmp_path / "straight") == resumed.snapshots == straight.snapshots
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (tmp_path / "straight").iterdir())
    for entry in straight.snapshots:
        expected, actual = load_file(tmp_path / "straight" / entry.file), load_file(folder / entry.file)
        assert all(torch.equal(expected[name], actual[name]) for name in expected), entry.file


def test_refuses_another_runs_folder_and_a_run_without_one(tmp_path: Path) -> None:
    run(tmp_path, batches=6)
    with pytest.raises(ValueError, match="already holds post-hoc EMA snapshots of another run"):
        run(tmp_path, batches=6)
    model = mlp()
    runner = AlgorithmRunner([PostHocEMA()], model, torch.optim.SGD(model.parameters(), lr=0.1), [0] * 4, "4ba", loggers=[])
    with pytest.raises(ValueError, match="pass snapshot_dir"):
        runner.fit_start()


def test_default_folder_is_under_the_trainers_save_folder(tmp_path: Path) -> None:
    posthoc = PostHocEMA(snapshot_interval="2ba")
    trainer = Trainer(mlp(), make_loader(), "4ba", algorithms=[posthoc], save_folder=tmp_path, progress_bar=False, loggers=[])
    trainer.fit()
    assert [entry.step for entry in read_index(tmp_path / "posthoc_ema")] == [2, 2, 4, 4]


@pytest.mark.parametrize("sigma_rels", [(), (0.05, 0.05), (0.0,), (0.31,), ("0.1",)])
def test_rejects_bad_sigma_rels(sigma_rels: Any) -> None:
    with pytest.raises(ValueError, match="sigma_rels must be distinct numbers"):
        PostHocEMA(sigma_rels=sigma_rels, snapshot_dir="unused")


def test_the_final_table_and_export_name_each_tracked_profile(tmp_path: Path) -> None:
    """Each profile's row is the eval of its last snapshot, loaded into the model and evaluated on its own."""
    posthoc = PostHocEMA(snapshot_interval="4ba")
    loader = make_loader()
    trainer = Trainer(
        mlp(), loader, "8ba", eval_dataloader=loader, algorithms=[posthoc], save_folder=tmp_path, progress_bar=False, loggers=[]
    )
    trainer.fit()
    table = evaluate_every_weights(trainer)
    assert list(table) == ["live", "PostHocEMA sigma_rel0.05", "PostHocEMA sigma_rel0.1"]
    exported = json.loads((tmp_path / "final" / "export.json").read_text())["files"]
    assert {"PostHocEMA-sigma_rel0.05.safetensors", "PostHocEMA-sigma_rel0.1.safetensors"} <= set(exported)
    for entry in read_index(tmp_path / "posthoc_ema"):
        if entry.step != 8:
            continue
        reference = mlp()
        reference.load_state_dict(load_file(tmp_path / "posthoc_ema" / entry.file))
        alone = Trainer(reference, loader, "1ba", eval_dataloader=loader, progress_bar=False, loggers=[])
        assert table[f"PostHocEMA sigma_rel{entry.sigma_rel:g}"] == pytest.approx(alone.eval(), abs=1e-6)
