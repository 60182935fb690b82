"""Files that are not what they claim: text named ``.pt``, a symlink with a matching digest, a fake safetensors."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from composer_swa.checkpoint import CheckpointError, TrainingPreempted, read_checkpoint, read_model_weights
from tests.checkpoint.resume_run import SignalSelf, build

PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def text_file(folder: Path) -> Path:
    """A copy of an /etc/passwd-like file: torch's unpickler fails on it with an IndexError."""
    path = folder / "passwd"
    path.write_bytes(PASSWD)
    return path


def with_digest(path: Path) -> Path:
    """Writes ``path.sha256`` as composer_swa does, so the digest check passes and the content is what fails."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return path


@pytest.mark.parametrize(
    "content",
    [PASSWD, b"", b'{"json": true}', b"\x80\x02junk", b"\x7fELF\x02\x01\x01" + bytes(64)],
    ids=["passwd", "empty", "json", "broken-pickle", "elf"],
)
def test_reading_a_file_that_is_no_checkpoint_names_it(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "ep1-ba5-rank0.pt"
    path.write_bytes(content)

    for read in (read_checkpoint, read_model_weights):
        with pytest.raises(
            CheckpointError, match=r"ep1-ba5-rank0\.pt'.* (not a composer_swa checkpoint or torch\.save file|empty)"
        ):
            read(path)


def test_load_path_to_a_symlinked_text_file_with_a_matching_digest_names_it(tmp_path: Path) -> None:
    link = tmp_path / "ep2-ba10-rank0.pt"
    link.symlink_to(text_file(tmp_path))
    with_digest(link)

    with pytest.raises(CheckpointError, match=r"'.*ep2-ba10-rank0\.pt' is not a composer_swa checkpoint or torch\.save file"):
        build(tmp_path / "run", "sgd", load_path=link).fit()


def test_autoresume_skips_a_text_file_posing_as_the_newest_checkpoint(tmp_path: Path) -> None:
    trainer = build(tmp_path, "sgd", callbacks=[SignalSelf(12, signal.SIGTERM)])
    with pytest.raises(TrainingPreempted):
        trainer.fit()
    newest = tmp_path / "ep9-ba99-rank0.pt"
    newest.symlink_to(text_file(tmp_path.parent))
    with_digest(newest)

    resumed = build(tmp_path, "sgd", autoresume=True)
    with pytest.warns(UserWarning, match=r"skipping checkpoint ep9-ba99-rank0\.pt: .*not a composer_swa checkpoint"):
        resumed.checkpointer.restore(resumed.state, resumed.engine, None)
    assert resumed.state.timestamp.batch_count == 12


def test_load_weights_only_from_a_fake_safetensors_names_the_file(tmp_path: Path) -> None:
    fake = tmp_path / "weights.safetensors"
    fake.write_bytes(PASSWD)
    trainer = build(tmp_path / "run", "sgd", load_path=fake, load_weights_only=True)

    with pytest.raises(CheckpointError, match=r"'.*weights\.safetensors' is not a readable safetensors file"):
        trainer.checkpointer.restore(trainer.state, trainer.engine, None)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_load_weights_only_checks_the_digest_beside_the_file(suffix: str, tmp_path: Path) -> None:
    model = build(tmp_path / "reference", "sgd").state.model
    path = tmp_path / f"weights{suffix}"
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    if suffix == ".safetensors":
        save_file(weights, path)
    else:
        torch.save(weights, path)
    with_digest(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a flipped byte in the last tensor: loads without complaint, but is not the file digested
    path.write_bytes(bytes(data))
    trainer = build(tmp_path / "run", "sgd", load_path=path, load_weights_only=True)

    with pytest.raises(CheckpointError, match=rf"weights{suffix}' is corrupt: its SHA-256 differs from weights{suffix}\.sha256"):
        trainer.checkpointer.restore(trainer.state, trainer.engine, None)
