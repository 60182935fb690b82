"""SHA-256 digests beside weight files, checked before a file is trusted; no torch needed (``swa-average`` runs without it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["CheckpointError", "verify_digest"]


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
