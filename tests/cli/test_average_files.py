"""``swa-average`` on inputs and outputs that are not what they claim: exit 2, the file named, nothing written."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from composer_swa import safetensors_format as writer  # where files are written
from composer_swa.checkpoint.files import CHECKPOINT_FORMAT, write_checkpoint
from composer_swa.config import build_run, load_config
from tests.cli.helpers import CONFIG, invoke

PASSWD = b"root:x:0:0:root:/root:/bin/bash\n"


def refused(code: int, out: str, *names: str) -> None:
    """The CLI's contract for a bad input: exit 2, one message naming the file, no traceback."""
    assert code == 2, out
    assert "Traceback" not in out and out.startswith("error: ") and out.count("error: ") == 1, out
    for name in names:
        assert name in out, out


def composer_checkpoint(folder: Path, epoch: int, value: float) -> Path:
    """A composer_swa checkpoint after ``epoch`` epochs of 10 batches, its weight filled with ``value``."""
    path = folder / f"ep{epoch}-ba{epoch * 10}.pt"
    timestamp = {"epoch_count": epoch, "batch_count": epoch * 10, "sample_count": 0, "token_count": 0, "batch_in_epoch": 0}
    state = {"model": {"w": torch.full((3,), value)}, "timestamp": timestamp}
    write_checkpoint({"format": CHECKPOINT_FORMAT, "version": 1, "state": state}, path)
    return path


def test_a_text_file_or_fake_safetensors_input_is_named(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2)}, tmp_path / "a.safetensors")
    (tmp_path / "passwd.pt").write_bytes(PASSWD)
    (tmp_path / "passwd.safetensors").write_bytes(PASSWD)
    output = tmp_path / "avg.safetensors"

    code, out = invoke(tmp_path / "a.safetensors", tmp_path / "passwd.pt", "-o", output)
    refused(code, out, "passwd.pt' is not a composer_swa checkpoint or torch.save file")
    code, out = invoke(tmp_path / "a.safetensors", tmp_path / "passwd.safetensors", "-o", output)
    refused(code, out, "passwd.safetensors' is not a safetensors file: its first 8 bytes give a header of")
    assert not output.exists()


def test_a_digest_that_does_not_match_is_checked(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2)}, tmp_path / "a.safetensors")
    torch.save({"w": torch.zeros(2)}, tmp_path / "b.pt")
    for name in ("a.safetensors", "b.pt"):
        (tmp_path / f"{name}.sha256").write_text(hashlib.sha256(b"another file").hexdigest() + f"  {name}\n")

    code, out = invoke(tmp_path / "a.safetensors", tmp_path / "b.pt", "-o", tmp_path / "avg.safetensors")
    refused(code, out, "a.safetensors' is corrupt: its SHA-256 differs from a.safetensors.sha256")
    (tmp_path / "a.safetensors.sha256").unlink()
    code, out = invoke(tmp_path / "a.safetensors", tmp_path / "b.pt", "-o", tmp_path / "avg.safetensors")
    refused(code, out, "b.pt' is corrupt: its SHA-256 differs from b.pt.sha256")
    assert not (tmp_path / "avg.safetensors").exists()


def test_dry_run_reports_a_shape_difference_by_tensor_name(tmp_path: Path) -> None:
    save_file({"w": torch.ones(3), "b": torch.ones(1)}, tmp_path / "a.safetensors")
    save_file({"w": torch.ones(2), "b": torch.ones(1)}, tmp_path / "b.safetensors")

    code, out = invoke(tmp_path / "a.safetensors", tmp_path / "b.safetensors", "--dry-run")

    assert code == 2 and "Traceback" not in out and "truncated" not in out, out
    assert "'w' has shape [3] in input 0, [2] in input 1" in out
    assert "[0] 1.000000  1.000000" in out  # the tensors that agree ("b") are still compared


def test_greedy_with_a_config_whose_model_does_not_match_lists_the_differences(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(CONFIG)
    model = build_run(load_config(tmp_path / "run.yaml")).model
    paths = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for path in paths:
        torch.save(model.state_dict(), path)
    other = tmp_path / "other.yaml"
    other.write_text(CONFIG.replace("hidden: [8]", "hidden: [4]"))

    code, out = invoke(*paths, "--method", "greedy", "--config", other, "-o", tmp_path / "greedy.safetensors")

    refused(code, out, "other.yaml' builds a model that does not match the inputs")
    assert "'layers.1.weight' has shape [8, 6] in the inputs, [4, 6] in the model" in out
    assert not (tmp_path / "greedy.safetensors").exists()


def test_lawa_orders_composer_checkpoints_by_their_stored_step(tmp_path: Path) -> None:
    paths = [composer_checkpoint(tmp_path, epoch, float(epoch)) for epoch in range(1, 13)]
    shell_order = sorted(paths, key=str)  # ep1, ep10, ep11, ep12, ep2, ...: what ckpt/*.pt expands to

    code, out = invoke(*shell_order, "--method", "lawa", "--last-k", "3", "-o", tmp_path / "lawa.safetensors")

    assert code == 0, out
    assert "ordered by the training step stored in each" in out and "ep12-ba120.pt (step 120)" in out
    expected = np.mean([np.full(3, epoch) for epoch in (10, 11, 12)], axis=0)  # the last three epochs
    np.testing.assert_allclose(load_file(tmp_path / "lawa.safetensors")["w"].numpy(), expected)


@pytest.mark.parametrize("method", ["lawa", "decay"])
def test_an_order_that_goes_backwards_is_refused_unless_intended(method: str, tmp_path: Path) -> None:
    for epoch in (2, 10):
        save_file({"w": torch.full((2,), float(epoch))}, tmp_path / f"ep{epoch}.safetensors")
    given = [tmp_path / "ep10.safetensors", tmp_path / "ep2.safetensors"]
    output = tmp_path / "out.safetensors"

    refused(*invoke(*given, "--method", method, "-o", output), "ep2.safetensors' comes after", "--keep-order")
    assert not output.exists()
    code, out = invoke(*given, "--method", method, "--last-k", "1", "--keep-order", "-o", output) if method == "lawa" else (
        invoke(*given, "--method", method, "--keep-order", "-o", output)
    )  # fmt: skip
    assert code == 0 and "in the order given (--keep-order)" in out, out
    if method == "lawa":  # the last input as given is ep2
        assert load_file(output)["w"].tolist() == [2.0, 2.0]


class _DiskFull:
    """Writes a few bytes of each file, and fails on the second file as a full disk would."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, file: BinaryIO, tensors: Any, metadata: Any) -> None:
        self.calls += 1
        file.write(b"partial")
        if self.calls == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        writer_write_file(file, tensors, metadata)


writer_write_file = writer._write_file


@pytest.mark.parametrize("output", ["shards/", "new/avg.safetensors"])
def test_a_full_disk_exits_2_and_leaves_nothing(output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tensors = {f"layer{k}": torch.full((256,), float(k)) for k in range(4)}
    save_file(tensors, tmp_path / "a.safetensors")
    save_file(tensors, tmp_path / "b.safetensors")
    failing = _DiskFull()
    failing.calls = 0 if output.endswith("/") else 1  # a single file fails at once; shards fail at the second
    monkeypatch.setattr(writer, "_write_file", failing)

    code, out = invoke(tmp_path / "a.safetensors", tmp_path / "b.safetensors", "--max-shard-size", "1KB", "-o", tmp_path / output)

    refused(code, out, "no space left on the device", "nothing was left behind")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors"]


def test_outputs_that_are_not_a_safetensors_file_or_a_folder_are_refused(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2)}, tmp_path / "a.safetensors")
    save_file({"w": torch.zeros(2)}, tmp_path / "b.safetensors")
    inputs = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    (tmp_path / "m").mkdir()
    save_file({"w": torch.zeros(2)}, tmp_path / "m" / "model.safetensors")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    refused(*invoke(*inputs, "-o", tmp_path / "out" / "x.txt"), "x.txt' ends in '.txt'")
    refused(*invoke(*inputs, "-o", inputs[1]), "b.safetensors' is input 1", "would overwrite it")
    refused(*invoke(inputs[0], tmp_path / "m", "-o", tmp_path / "m"), "m' is input 1")
    refused(*invoke(inputs[0], tmp_path / "m" / "model.safetensors", "-o", tmp_path / "m"), "would overwrite input 1")
    refused(*invoke(*inputs, "--union", "--intersection", "-o", tmp_path / "u.safetensors"), "--union and --intersection")

    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors", "m"]
    code, out = invoke(*inputs, "-o", f"{tmp_path}/v1.5/")  # a trailing '/' says folder, whatever the name
    assert code == 0 and (tmp_path / "v1.5" / "model.safetensors").is_file(), out
