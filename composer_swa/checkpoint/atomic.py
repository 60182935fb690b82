"""Atomic file writes: a reader, or a run that dies mid-write, never sees half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "fsync_folder"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def fsync_folder(folder: Path) -> None:
    """Flushes ``folder``'s entries, so a rename inside it survives a power cut (a no-op where unsupported)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Calls ``write(temporary_path)`` in ``path``'s folder, flushes it, renames it over ``path``, flushes the folder.

    A failed write (a full disk, an exception in ``write``) removes the temporary file, leaves the
    previous ``path`` exactly as it was, and re-raises.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> atomic_write(folder / "note.txt", lambda temporary: temporary.write_text("hello"))
        >>> (folder / "note.txt").read_text()
        'hello'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes it private; give it the usual permissions
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
