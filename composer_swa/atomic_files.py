"""Atomic file writes: a reader, or a run that dies mid-write, never sees half a file.

A leaf: it imports nothing from composer_swa, so that checkpoints (:mod:`composer_swa.checkpoint`)
and merged outputs (:mod:`composer_swa.merging`) both write through it without depending on each
other (tests/test_layout.py checks it stays one).
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["DiskFullError", "atomic_write", "atomic_write_text", "fsync_folder", "start_writeback"]

#: torch.save reports a failed write (a full disk among others) as a RuntimeError from its zip writer.
_TORCH_WRITE_FAILURES = ("PytorchStreamWriter", "inline_container", "file write failed")
_NEARLY_FULL = 64 << 20  # with no size to compare, less than this free after a failed write is a full disk


class DiskFullError(OSError):
    """No space left for a file: names the file, the bytes it needs (when known) and the bytes free.

    Example:
        >>> error = DiskFullError(Path("ckpt/ep1-ba8.pt"), needed=5 << 20, free=1 << 20)
        >>> error.strerror.split(": ")[1]
        'it needs about 5.0 MiB, 1.0 MiB are free there; free some space or write elsewhere'
        >>> error.errno == errno.ENOSPC and isinstance(error, OSError)
        True
    """

    def __init__(self, path: Path, needed: int | None, free: int | None) -> None:
        need = f"it needs about {_size(needed)}" if needed is not None else "it did not fit"
        have = f", {_size(free)} are free there" if free is not None else ""
        super().__init__(
            errno.ENOSPC, f"No space left on device for {str(path)!r}: {need}{have}; free some space or write elsewhere"
        )
        self.path, self.needed, self.free = path, needed, free


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size = count / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _as_write_error(error: BaseException, path: Path, size_hint: int | None) -> OSError | None:
    """A full disk as :class:`DiskFullError`; torch's other write failures as ``OSError``; else ``None``."""
    if isinstance(error, DiskFullError):
        return None
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(path, size_hint, _free_bytes(path.parent))
    if isinstance(error, RuntimeError) and any(marker in str(error) for marker in _TORCH_WRITE_FAILURES):
        free = _free_bytes(path.parent)
        if free is not None and free < (size_hint if size_hint is not None else _NEARLY_FULL):
            return DiskFullError(path, size_hint, free)
        return OSError(errno.EIO, f"could not write {str(path)!r}: {str(error).strip().splitlines()[0]}")
    return None


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


@functools.cache
def _sync_file_range() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE_WRITE = 2  # from <fcntl.h>: start writing the range out, do not wait


def start_writeback(descriptor: int, offset: int, length: int) -> None:
    """Asks the kernel to start writing a range of a file to disk now, without waiting (Linux; elsewhere a no-op).

    The final ``fsync`` still gives the guarantee; starting early only overlaps the disk's work with
    the rest of the write, so that ``fsync`` finds little left to flush.
    """
    sync_file_range = _sync_file_range()
    if sync_file_range is not None:
        sync_file_range(descriptor, offset, length, _SYNC_FILE_RANGE_WRITE)


def atomic_write(path: Path, write: Callable[[Path], object], size_hint: int | None = None) -> None:
    """Calls ``write(temporary_path)`` in ``path``'s folder, flushes it, renames it over ``path``, flushes the folder.

    A failed write (a full disk, an exception in ``write``) removes the temporary file, leaves the
    previous ``path`` exactly as it was, and re-raises; a full disk (``ENOSPC``, or torch's
    ``RuntimeError`` from its zip writer with the disk nearly full) as :class:`DiskFullError` naming
    ``path`` and ``size_hint``, the bytes the file needs, when given.

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
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        translated = _as_write_error(error, path, size_hint)
        if translated is not None:
            raise translated from error
        raise
    fsync_folder(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
