"""A full disk is reported as such (the file, the bytes it needs), leaves no partial file, and the export is
still attempted after the last checkpoint failed. The disk is never really filled: writes are patched."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from composer_swa.atomic_files import DiskFullError
from composer_swa.checkpoint import export as export_module
from composer_swa.checkpoint import files as checkpoint_files
from composer_swa.checkpoint import list_checkpoints, write_checkpoint
from tests.checkpoint.resume_run import build

PAYLOAD = {"format": "x", "weights": torch.zeros(1000)}  # 4000 bytes of tensor data
TORCH_WRITE_FAILURE = (
    "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file write failed"
)


def no_space(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def torch_write_failure(payload: Any, file: Any) -> None:
    file.write(b"PK\x03\x04 half a zip")
    raise RuntimeError(TORCH_WRITE_FAILURE)


def test_enospc_is_reported_as_a_full_disk_naming_the_file_and_the_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint_files.torch, "save", no_space)
    path = tmp_path / "ep1-ba8-rank0.pt"

    with pytest.raises(
        DiskFullError, match=rf"No space left on device for '{path}': it needs about 3\.9 KiB, .* are free"
    ) as caught:
        write_checkpoint(PAYLOAD, path)

    assert caught.value.errno == errno.ENOSPC and caught.value.needed == 4000
    assert list(tmp_path.iterdir()) == []


def test_torchs_zip_writer_failure_on_a_full_disk_is_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint_files.torch, "save", torch_write_failure)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage._replace(free=1000))

    with pytest.raises(DiskFullError, match=r"needs about 3\.9 KiB, 1000 B are free there"):
        write_checkpoint(PAYLOAD, tmp_path / "ep1-ba8-rank0.pt")
    assert list(tmp_path.iterdir()) == []


def test_torchs_zip_writer_failure_with_space_left_is_an_oserror_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint_files.torch, "save", torch_write_failure)

    with pytest.raises(OSError, match=r"could not write '.*ep1-ba8-rank0\.pt': \[enforce fail") as caught:
        write_checkpoint(PAYLOAD, tmp_path / "ep1-ba8-rank0.pt")
    assert not isinstance(caught.value, DiskFullError)
    assert list(tmp_path.iterdir()) == []


def test_a_digest_that_does_not_fit_takes_its_checkpoint_with_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint_files, "atomic_write_text", no_space)

    with pytest.raises(OSError, match="No space left"):
        write_checkpoint(PAYLOAD, tmp_path / "ep1-ba8-rank0.pt")
    assert list(tmp_path.iterdir()) == []  # never a checkpoint without its digest


def test_a_full_disk_at_the_last_checkpoint_still_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = torch.save

    def full_at_the_end(payload: Any, path: Any) -> None:
        if payload["state"]["timestamp"]["batch_count"] == 48:
            no_space()
        real_save(payload, path)

    monkeypatch.setattr(checkpoint_files.torch, "save", full_at_the_end)
    trainer = build(tmp_path, "ema")

    with pytest.warns(UserWarning, match=r"could not write a checkpoint at .*No space left on device for '.*ep4-ba48-rank0\.pt'"):
        trainer.fit()

    assert list_checkpoints(tmp_path)[-1].name == "ep3-ba45-rank0.pt"
    assert (tmp_path / "final" / "export.json").is_file() and (tmp_path / "final" / "EMA-average.safetensors").is_file()
    assert [path for path in tmp_path.rglob("*") if path.name.endswith(".tmp")] == []


def test_an_export_that_does_not_fit_is_reported_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save_file = export_module.save_file

    def no_space_for_averages(tensors: Any, path: str, metadata: Any = None) -> None:
        if "EMA-average" in path:  # the live weights' export fits; the average's does not
            no_space()
        real_save_file(tensors, path, metadata=metadata)

    monkeypatch.setattr(export_module, "save_file", no_space_for_averages)
    trainer = build(tmp_path, "ema")

    with pytest.raises(DiskFullError, match=r"No space left on device for '.*final/EMA-average\.safetensors': it needs about"):
        trainer.fit()

    assert sorted(path.name for path in (tmp_path / "final").iterdir()) == ["model.safetensors"]
    assert list_checkpoints(tmp_path)[-1].name == "ep4-ba48-rank0.pt"
