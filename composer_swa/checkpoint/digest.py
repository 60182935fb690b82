"""SHA-256 digests beside weight files, checked before a file is trusted; no torch needed (``swa-average`` runs without it)."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from composer_swa.atomic_files import start_writeback

__all__ = ["CheckpointError", "verify_digest"]

_HASH_INLINE = 1 << 20  # smaller writes are hashed in the caller: a thread hand-off would cost more than it saves
_WRITEBACK_EVERY = 16 << 20
_hasher: ThreadPoolExecutor | None = None
_hasher_lock = threading.Lock()


def _hashing_thread() -> ThreadPoolExecutor:
    global _hasher
    with _hasher_lock:
        if _hasher is None:
            _hasher = ThreadPoolExecutor(1, thread_name_prefix="composer_swa-sha256")
        return _hasher


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt, unsafe to unpickle, or from another run."""


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


class DigestingWriter:
    """A binary file wrapper that computes the SHA-256 of what goes through it, while it is written.

    A large write is hashed on a worker thread while this thread writes it to the file; both release
    the GIL, so hashing hides behind the write instead of re-reading the file afterwards. Every 16 MiB
    the kernel is asked to start writing the file out, so the caller's final ``fsync`` finds little left.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "w.bin"
        >>> with open(path, "wb") as file:
        ...     writer = DigestingWriter(file)
        ...     _ = writer.write(b"weights")
        >>> writer.hexdigest() == hashlib.sha256(b"weights").hexdigest() == _sha256(path)
        True
    """

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self._digest = hashlib.sha256()
        self._written = 0
        self._started = 0

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        if view.nbytes < _HASH_INLINE:
            self._digest.update(view)
            self.file.write(view)
        else:
            # The view may point into memory its owner reuses after write returns: wait for the hash.
            hashed = _hashing_thread().submit(self._digest.update, view)
            self.file.write(view)
            hashed.result()
        self._written += view.nbytes
        if self._written - self._started >= _WRITEBACK_EVERY:
            self.file.flush()
            start_writeback(self.file.fileno(), self._started, self._written - self._started)
            self._started = self._written
        return view.nbytes

    def flush(self) -> None:
        self.file.flush()

    def hexdigest(self) -> str:
        """The SHA-256 of everything written so far, as ``sha256sum`` prints it."""
        return self._digest.hexdigest()


def verify_digest(path: Path | str) -> None:
    """Checks ``path`` against the ``path.sha256`` beside it, when there is one (as ``sha256sum -c`` would).

    Raises:
        CheckpointError: The file's SHA-256 differs from the digest file's (a flipped byte, a partial
            copy, or a digest of another file).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "w.pt"
        >>> _ = path.write_bytes(b"weights")
        >>> verify_digest(path)  # no digest beside it: nothing to check
    """
    path = Path(path)
    digest_file = _digest_path(path)
    if digest_file.is_file():
        expected = digest_file.read_text(encoding="utf-8").split(maxsplit=1)[0] if digest_file.stat().st_size else ""
        if _sha256(path) != expected:
            raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: its SHA-256 differs from {digest_file.name}")
