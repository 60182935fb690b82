"""Durability and safety: atomic writes, corrupt files, write failures, pruning, malicious pickles."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from composer_swa.atomic_files import atomic_write
from composer_swa.checkpoint import (
    CheckpointError,
    TrainingPreempted,
    list_checkpoints,
    read_checkpoint,
    write_checkpoint,
)
from composer_swa.checkpoint import files as checkpoint_files
from tests.checkpoint.resume_run import SignalSelf, build


def stopped_run(folder: Path, batch: int, **checkpointing: Any) -> None:
    """A run preempted (in-process SIGTERM) after ``batch``, with checkpoints every 5 batches."""
    import signal

    trainer = build(folder, "swa", callbacks=[SignalSelf(batch, signal.SIGTERM)], **checkpointing)
    with pytest.raises(TrainingPreempted):
        trainer.fit()


def resumed_batch(folder: Path) -> int:
    """The batch a resumed run starts from."""
    trainer = build(folder, "swa", autoresume=True)
    trainer.checkpointer.restore(trainer.state, trainer.engine, None)
    return int(trainer.state.timestamp.batch_count)


def test_atomic_write_failure_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "weights.bin"
    target.write_bytes(b"previous")

    def fail_halfway(temporary: Path) -> None:
        temporary.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, fail_halfway)

    assert target.read_bytes() == b"previous"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["weights.bin"]


def test_truncated_newest_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path: Path) -> None:
    stopped_run(tmp_path, 12)
    newest = list_checkpoints(tmp_path)[-1]
    assert newest.name == "ep1-ba12-rank0.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    newest.with_name(newest.name + ".sha256").unlink()  # as if the copy stopped short: no digest to compare

    with pytest.warns(UserWarning, match=r"skipping checkpoint ep1-ba12-rank0\.pt: .*truncated or corrupt"):
        assert resumed_batch(tmp_path) == 10


def test_a_flipped_byte_is_caught_by_the_digest(tmp_path: Path) -> None:
    stopped_run(tmp_path, 12)
    newest = list_checkpoints(tmp_path)[-1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # torch.load would read this file without complaint
    newest.write_bytes(bytes(data))

    with pytest.raises(CheckpointError, match=r"corrupt: its SHA-256 differs from ep1-ba12-rank0\.pt\.sha256"):
        read_checkpoint(newest)
    with pytest.warns(UserWarning, match=r"skipping checkpoint ep1-ba12-rank0\.pt"):
        assert resumed_batch(tmp_path) == 10


def test_a_failed_write_is_reported_keeps_the_previous_checkpoint_and_training_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = torch.save
    calls = []

    def disk_full_on_the_second_save(payload: Any, file: Any) -> None:
        calls.append(file)
        if len(calls) == 2:
            file.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(payload, file)

    monkeypatch.setattr(checkpoint_files.torch, "save", disk_full_on_the_second_save)
    trainer = build(tmp_path, "swa", save_num_checkpoints_to_keep=1)

    with pytest.warns(UserWarning, match=r"could not write a checkpoint at .*No space left.*previous one is intact"):
        trainer.fit()

    # ba5 was kept while ba10 failed (pruning waits for a safe write); later saves pruned it.
    assert [path.name for path in list_checkpoints(tmp_path)] == ["ep4-ba48-rank0.pt"]
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]
    assert trainer.state.timestamp.batch_count == 48


def test_pruning_happens_only_after_the_new_checkpoint_is_safely_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped_run(tmp_path, 12, save_num_checkpoints_to_keep=2)
    assert [path.name for path in list_checkpoints(tmp_path)] == ["ep0-ba10-rank0.pt", "ep1-ba12-rank0.pt"]

    def no_space(payload: Any, path: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_files.torch, "save", no_space)
    with pytest.raises(OSError):
        write_checkpoint({"format": "x"}, tmp_path / "ep1-ba15-rank0.pt")

    assert [path.name for path in list_checkpoints(tmp_path)] == ["ep0-ba10-rank0.pt", "ep1-ba12-rank0.pt"]
    assert read_checkpoint(tmp_path / "ep1-ba12-rank0.pt")["state"]["timestamp"]["batch_count"] == 12


class _RunsCode:
    """Unpickling this runs os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "ep9-ba99-rank0.pt"
    torch.save({"format": "composer_swa.checkpoint", "state": _RunsCode(marker)}, evil)

    with pytest.raises(CheckpointError, match=r"refused to load .*ep9-ba99-rank0\.pt.*could run code.*nothing in it was run"):
        build(tmp_path / "run", "sgd", load_path=evil).fit()
    assert not marker.exists()


def test_autoresume_skips_a_malicious_newest_file(tmp_path: Path) -> None:
    stopped_run(tmp_path, 12)
    marker = tmp_path / "payload-ran"
    torch.save({"x": _RunsCode(marker)}, tmp_path / "ep9-ba99-rank0.pt")

    with pytest.warns(UserWarning, match=r"skipping checkpoint ep9-ba99-rank0\.pt: refused to load"):
        assert resumed_batch(tmp_path) == 12
    assert not marker.exists()


def test_a_folder_of_another_run_is_not_overwritten_without_autoresume(tmp_path: Path) -> None:
    stopped_run(tmp_path, 5)

    with pytest.raises(CheckpointError, match=r"already holds checkpoints .*pass autoresume=True"):
        build(tmp_path, "swa").fit()


def test_resuming_with_other_data_is_refused(tmp_path: Path) -> None:
    stopped_run(tmp_path, 5)
    trainer = build(tmp_path, "swa", autoresume=True)
    loader = trainer.state.train_dataloader
    trainer.state.train_dataloader = type(loader)(loader.dataset, batch_size=16, shuffle=True)
    trainer.state.resolver = None  # type: ignore[assignment]

    with pytest.raises(CheckpointError, match="written with 12 batches per epoch, this run has 6"):
        trainer.fit()


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"save_num_checkpoints_to_keep": 0},
            ValueError,
            r"save_num_checkpoints_to_keep must be -1 \(keep all\) or a count >= 1, got 0",
        ),
        ({"save_interval": "0dur"}, ValueError, r"save_interval in 'dur' must lie in \(0, 1\], got '0.0dur'"),
        ({"save_interval": "soon"}, ValueError, r"save_interval"),
        ({"save_folder": None, "autoresume": True}, ValueError, "autoresume=True needs a save_folder"),
        ({"load_path": "missing.pt"}, FileNotFoundError, r"load_path 'missing.pt' does not exist"),
        ({"load_weights_only": True}, ValueError, "load_weights_only=True needs a load_path"),
    ],
)
def test_bad_checkpoint_arguments_fail_at_construction(
    tmp_path: Path, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    from composer_swa.checkpoint import CheckpointOptions

    with pytest.raises(error, match=message):
        CheckpointOptions.from_arguments(**{"save_folder": tmp_path, **arguments})


def test_the_digest_hashed_while_writing_is_the_files_sha256_and_sha256sum_verifies_it(tmp_path: Path) -> None:
    # 20 MB: large tensors are hashed on the worker thread and the writeback starts mid-file.
    payload = {"format": "x", "weights": [torch.randn(1 << 20) for _ in range(5)], "small": torch.arange(10)}
    path = tmp_path / "ep1-ba2.pt"
    write_checkpoint(payload, path)
    recorded, name = (tmp_path / "ep1-ba2.pt.sha256").read_text().split()
    assert name == path.name and recorded == hashlib.sha256(path.read_bytes()).hexdigest()
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "-c", "ep1-ba2.pt.sha256"], cwd=tmp_path, check=True, capture_output=True)
    loaded = torch.load(path, weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(loaded["weights"], payload["weights"]))
