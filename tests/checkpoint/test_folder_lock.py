"""One run per save_folder: a live run's lock refuses a second one; a crashed run's lock and orphans go away."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
import torch

from composer_swa import Callback, State
from composer_swa.checkpoint import list_checkpoints
from composer_swa.checkpoint.folder_lock import LOCK_NAME, SaveFolderInUseError, owning_save_folder
from composer_swa.loggers import Logger
from tests.checkpoint.resume_run import build


def _hold(folder: Path, ready: Connection, release: Connection) -> None:
    with owning_save_folder(folder, torch.device("cpu")):
        ready.send("locked")
        release.recv()


class Holder:
    """Another process (forked: no second import of torch) holding ``folder``'s lock until released or killed."""

    def __init__(self, folder: Path) -> None:
        context = multiprocessing.get_context("fork")
        ready, self._ready = context.Pipe(duplex=False)
        release, self._release = context.Pipe(duplex=False)
        self.process = context.Process(target=_hold, args=(folder, self._ready, release), daemon=True)
        self.process.start()
        assert ready.poll(30) and ready.recv() == "locked"

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def release(self) -> None:
        self._release.send("go")
        self.process.join(30)

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup runs in the holder
        self.process.join(30)


def test_a_second_run_on_a_folder_in_use_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = Holder(tmp_path)
    try:
        trainer = build(tmp_path, "sgd", autoresume=True)
        message = rf"in use by another run \(pid {holder.pid} on {socket.gethostname()}, started "
        with pytest.raises(SaveFolderInUseError, match=message):
            trainer.fit()
        assert trainer.state.timestamp.batch_count == 0 and list_checkpoints(tmp_path) == []
    finally:
        holder.release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    Holder(tmp_path).kill()

    trainer = build(tmp_path, "sgd")
    trainer.fit()  # the kernel released the dead process's lock
    assert list_checkpoints(tmp_path)[-1].name == "ep4-ba48-rank0.pt"


def test_the_lock_is_held_during_fit_and_released_after(tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []

    class ReadLock(Callback):
        def batch_end(self, state: State, logger: Logger) -> None:
            if not seen:
                seen.append(json.loads((tmp_path / LOCK_NAME).read_text()))

    build(tmp_path, "sgd", callbacks=[ReadLock()]).fit()
    assert seen[0]["pid"] == os.getpid() and seen[0]["host"] == socket.gethostname()

    Holder(tmp_path).release()  # fit() released it: another process takes it at once


def test_orphaned_temporaries_of_our_writes_are_removed_at_start(tmp_path: Path) -> None:
    (tmp_path / "final").mkdir()
    orphans = [
        tmp_path / ".ep1-ba12-rank0.pt.k2j4_x9q.tmp",  # a SIGKILL during torch.save
        tmp_path / ".ep1-ba12-rank0.pt.sha256.ab12cd34.tmp",
        tmp_path / "final" / ".model.safetensors.zz9_yy8x.tmp",
        tmp_path / "final" / ".export.json.q1w2e3r4.tmp",
    ]
    others = [tmp_path / "notes.tmp", tmp_path / ".my-data.bin.tmp", tmp_path / "final" / "README.md"]
    for path in orphans + others:
        path.write_bytes(b"x" * 100)
    messages: list[str] = []
    trainer = build(tmp_path, "sgd")
    trainer.logger.log_message = lambda message, step: messages.append(message)  # type: ignore[method-assign]

    trainer.fit()

    assert not any(path.exists() for path in orphans)
    assert all(path.exists() for path in others)
    assert any("removed 4 temporary file(s) left by interrupted writes" in message for message in messages)
