"""One run per ``save_folder``: an exclusive lock held while ``fit()`` runs, and the orphans of a killed run cleaned.

Two runs writing one folder interleave their checkpoints (and one's digest can describe the other's
file); a second ``autoresume`` run would resume the live one. So ``fit()`` takes ``flock`` on
``save_folder/.composer_swa.lock`` and writes its holder (pid, host, start time) into it. The kernel
drops the lock when the process ends, however it ends, so a crashed run leaves no stale lock. On NFS,
Linux maps ``flock`` to a POSIX lock the server arbitrates. Where ``fcntl`` does not exist (Windows)
nothing is locked.

Once the lock is held, no other run writes there, so temporary files of our write pattern (left
behind by a SIGKILL during an atomic write) are this folder's orphans, and are removed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch

from composer_swa.distributed.process_group import any_rank, distributed_info

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "SaveFolderInUseError", "clean_orphans", "owning_save_folder"]

LOCK_NAME = ".composer_swa.lock"
#: ``atomic_write``'s temporaries (``.NAME.XXXXXXXX.tmp``) of checkpoints, their digests, and ``final/``'s files.
_CHECKPOINT_TEMPORARY = re.compile(r"^\..+\.pt(\.sha256)?\.[A-Za-z0-9_]+\.tmp$")  # any save_filename ending in .pt
_EXPORT_TEMPORARY = re.compile(r"^\.[\w.+-]+\.(safetensors|json)\.[A-Za-z0-9_]+\.tmp$")


class SaveFolderInUseError(RuntimeError):
    """Another live run holds the ``save_folder`` lock."""


def _holder(handle: int) -> str:
    try:
        os.lseek(handle, 0, os.SEEK_SET)
        holder = json.loads(os.read(handle, 4096).decode("utf-8"))
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SaveFolderInUseError(
                f"save_folder {str(folder)!r} is in use by another run ({_holder(handle)}; lock file {str(path)!r}); "
                "wait for it to end, or give this run another save_folder"
            ) from None
        started = time.strftime("%Y-%m-%d %H:%M:%S %z")
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started})
        os.ftruncate(handle, 0)
        os.pwrite(handle, holder.encode("utf-8") + b"\n", 0)
        try:
            yield
        finally:
            os.ftruncate(handle, 0)  # the lock goes with the descriptor; the file stays (unlinking it would race)
    finally:
        os.close(handle)


def clean_orphans(folder: Path) -> list[Path]:
    """Removes the temporaries of interrupted checkpoint and export writes in ``folder`` and ``folder/final``.

    Call it only while holding the folder's lock. Returns what was removed.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / ".ep1-ba8.pt.k2j4_x9q.tmp").write_bytes(b"half")
        >>> _ = (folder / "notes.tmp").write_bytes(b"not ours")
        >>> [path.name for path in clean_orphans(folder)], sorted(path.name for path in folder.iterdir())
        (['.ep1-ba8.pt.k2j4_x9q.tmp'], ['notes.tmp'])
    """
    removed = []
    for place, pattern in ((folder, _CHECKPOINT_TEMPORARY), (folder / "final", _EXPORT_TEMPORARY)):
        if not place.is_dir():
            continue
        for path in sorted(place.iterdir()):
            if pattern.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


@contextmanager
def owning_save_folder(folder: Path | None, device: torch.device) -> Iterator[list[str]]:
    """Holds ``folder``'s lock inside the block (process 0 alone, which writes) and cleans its orphans.

    Yields notes for the run's log. Raises :class:`SaveFolderInUseError` on every process when another
    run holds the lock. ``folder=None`` does nothing.
    """
    if folder is None:
        yield []
        return
    rank_zero = distributed_info().is_rank_zero
    with ExitStack() as stack:
        refused: OSError | SaveFolderInUseError | None = None
        if rank_zero and fcntl is not None:
            try:
                stack.enter_context(_locked(folder))
            except (SaveFolderInUseError, OSError) as error:  # in use, or not writable: the others must hear of it
                refused = error
        if any_rank(refused is not None, device):  # every process stops when process 0 could not lock
            raise refused or SaveFolderInUseError(f"save_folder {str(folder)!r} could not be locked (see process 0)")
        removed = clean_orphans(folder) if rank_zero else []
        yield (
            [f"removed {len(removed)} temporary file(s) left by interrupted writes: {[p.name for p in removed]}"]
            if removed
            else []
        )
