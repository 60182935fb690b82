"""Exact resume: a run killed mid-epoch and resumed ends bit-for-bit where the uninterrupted run ends."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from composer_swa.checkpoint import TrainingPreempted, list_checkpoints, read_checkpoint
from tests.checkpoint.resume_run import ALGORITHMS, BATCHES_PER_EPOCH, MORE_ALGORITHMS, SignalSelf, build, final_weights
from tests.helpers import assert_equal_weights

REPOSITORY = Path(__file__).resolve().parents[2]
STOP_AT = 17  # mid-epoch 2 and inside SWA's window [12, 36]; the last periodic checkpoint is at batch 15


@functools.cache
def uninterrupted(algorithms: str, folder: Path) -> dict[str, torch.Tensor]:
    trainer = build(folder / f"reference-{algorithms}", algorithms)
    trainer.fit()
    return final_weights(trainer)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    """Each case run in a subprocess that signals itself after batch STOP_AT; all started at once."""
    root = tmp_path_factory.mktemp("interrupted")
    cases = {name: "KILL" for name in ALGORITHMS} | {"swa+ema/TERM": "TERM"}
    processes = {}
    for case, signal_name in cases.items():
        folder = root / case.replace("/", "-")
        command = [sys.executable, "-m", "tests.checkpoint.resume_run", str(folder), case.split("/")[0]]
        command += ["--stop-at", str(STOP_AT), "--signal", signal_name]
        processes[case] = (folder, subprocess.Popen(command, cwd=REPOSITORY, stderr=subprocess.PIPE, text=True))
    results = {}
    for case, (folder, process) in processes.items():
        _, errors = process.communicate(timeout=120)
        assert process.returncode in (-signal.SIGKILL, 0), errors
        results[case] = (folder, process.returncode)
    return results


@pytest.mark.parametrize("algorithms", sorted(ALGORITHMS))
def test_sigkill_mid_epoch_then_autoresume_is_exact(
    algorithms: str, interrupted: dict[str, tuple[Path, int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder, returncode = interrupted[algorithms]
    assert returncode == -signal.SIGKILL
    newest = list_checkpoints(folder)[-1]
    assert newest.name == "ep1-ba15-rank0.pt"  # nothing after the kill; resumes 3 batches into epoch 2
    assert read_checkpoint(newest)["state"]["timestamp"]["batch_in_epoch"] == 15 - BATCHES_PER_EPOCH

    resumed = build(folder, algorithms, autoresume=True)
    resumed.fit()

    assert_equal_weights(final_weights(resumed), uninterrupted(algorithms, tmp_path_factory.getbasetemp()))
    assert resumed.state.timestamp.batch_count == 4 * BATCHES_PER_EPOCH


def test_sigterm_saves_at_the_next_batch_and_exits_zero(
    interrupted: dict[str, tuple[Path, int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder, returncode = interrupted["swa+ema/TERM"]
    assert returncode == 0
    assert list_checkpoints(folder)[-1].name == f"ep1-ba{STOP_AT}-rank0.pt"
    assert not (folder / "final").exists()  # preempted: FIT_END and the export did not run

    resumed = build(folder, "swa+ema", autoresume=True)
    resumed.fit()

    assert_equal_weights(final_weights(resumed), uninterrupted("swa+ema", tmp_path_factory.getbasetemp()))


def test_sigint_in_process_raises_training_preempted_with_status_zero(tmp_path: Path) -> None:
    trainer = build(tmp_path, "ema", callbacks=[SignalSelf(5, signal.SIGINT)])
    previous_handler = signal.getsignal(signal.SIGINT)

    with pytest.raises(TrainingPreempted) as preempted:
        trainer.fit()

    assert preempted.value.code == 0 and preempted.value.signal_name == "SIGINT"
    assert preempted.value.checkpoint == tmp_path / "ep0-ba5-rank0.pt" and preempted.value.checkpoint.is_file()
    assert signal.getsignal(signal.SIGINT) is previous_handler  # handlers are put back


def test_a_checkpoint_at_the_end_of_training_resumes_into_fit_end(tmp_path: Path) -> None:
    """The last checkpoint is written before FIT_END, so a resumed finished run replays only FIT_END."""
    first = build(tmp_path, "swa")
    first.fit()
    assert list_checkpoints(tmp_path)[-1].name == "ep4-ba48-rank0.pt"

    again = build(tmp_path, "swa", autoresume=True)
    again.fit()

    assert_equal_weights(final_weights(again), final_weights(first))
    # The trace went through the checkpoint: the 13 SWA updates of the first run, and a second FIT_START.
    assert again.engine.trace[("SWA", "batch_end")] == first.engine.trace[("SWA", "batch_end")] == 13
    assert again.engine.trace[("SWA", "fit_start")] == 2


def test_a_shuffling_loader_with_its_own_generator_resumes_exactly(tmp_path: Path) -> None:
    def run(folder: Path, stop: int | None, autoresume: bool = False) -> dict[str, torch.Tensor]:
        trainer = build(folder, "sgd", autoresume=autoresume)
        loader = trainer.state.train_dataloader
        generator = torch.Generator().manual_seed(3)
        trainer.state.train_dataloader = type(loader)(loader.dataset, batch_size=8, shuffle=True, generator=generator)
        if stop is not None:
            trainer.state.callbacks.append(SignalSelf(stop, signal.SIGTERM))
            trainer.engine.refresh()
            with pytest.raises(TrainingPreempted):
                trainer.fit()
        else:
            trainer.fit()
        return final_weights(trainer)

    reference = run(tmp_path / "reference", None)
    run(tmp_path / "stopped", 19)
    assert list_checkpoints(tmp_path / "stopped")[-1].name == "ep1-ba19-rank0.pt"

    assert_equal_weights(run(tmp_path / "stopped", None, autoresume=True), reference)


@pytest.mark.parametrize("algorithms", sorted(MORE_ALGORITHMS))
def test_lawa_swats_and_swag_resume_exactly_after_preemption(algorithms: str, tmp_path: Path) -> None:
    stopped = build(tmp_path / "stopped", algorithms, callbacks=[SignalSelf(STOP_AT, signal.SIGTERM)])
    with pytest.raises(TrainingPreempted):
        stopped.fit()
    if algorithms == "swats":
        assert isinstance(stopped.state.optimizers[0], torch.optim.SGD)  # switched before the checkpoint

    resumed = build(tmp_path / "stopped", algorithms, autoresume=True)
    resumed.fit()

    assert_equal_weights(final_weights(resumed), uninterrupted(algorithms, tmp_path))


def test_only_the_first_fit_loads_a_checkpoint(tmp_path: Path) -> None:
    build(tmp_path, "sgd").fit()
    trainer = build(tmp_path, "sgd", autoresume=True)

    trainer.fit()
    assert trainer.checkpointer.notes == [f"resumed from {tmp_path / 'ep4-ba48-rank0.pt'} at {trainer.state.timestamp}"]
    trainer.fit(duration="1ba")  # a second fit() goes on from where the first ended
    assert trainer.checkpointer.notes == [] and trainer.state.timestamp.batch_count == 49
