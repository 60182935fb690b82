"""Checkpoint files: names, atomic writes with a SHA-256 beside each, and loads that run no code.

A checkpoint ``ep3-ba120-rank0.pt`` is one ``torch.save`` of tensors and plain containers, written
atomically, followed by ``ep3-ba120-rank0.pt.sha256`` in ``sha256sum`` format (so ``sha256sum -c`` checks
it too). ``torch.load`` notices a truncated file but not a flipped byte in tensor data; the digest
notices both.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import IO, Any, cast

import torch

from composer_swa.atomic_files import atomic_write, atomic_write_text
from composer_swa.checkpoint.digest import CheckpointError, DigestingWriter, _digest_path, verify_digest
from composer_swa.checkpoint.finite import named_tensors
from composer_swa.checkpoint.naming import CheckpointNaming

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "list_checkpoints",
    "read_checkpoint",
    "read_model_weights",
    "remove_checkpoint",
    "verify_digest",
    "write_checkpoint",
]

CHECKPOINT_FORMAT = "composer_swa.checkpoint"
CHECKPOINT_VERSION = 1
# How a torch.save file starts: a zip archive (torch >= 1.6), or a pickle (protocol 2+, the legacy format).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80
_WEIGHTS_ONLY_HINT = (
    "composer_swa checkpoints hold only tensors and plain containers, so this file was not written by "
    "composer_swa, or was altered"
)


def list_checkpoints(folder: Path, naming: CheckpointNaming | None = None) -> list[Path]:
    """The checkpoints in ``folder`` named as ``naming`` (default: Composer's names), oldest first by batch count.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("ep1-ba20-rank0.pt", "ep0-ba8-rank0.pt", "notes.txt"):
        ...     _ = (folder / name).write_bytes(b"")
        >>> [path.name for path in list_checkpoints(folder)]
        ['ep0-ba8-rank0.pt', 'ep1-ba20-rank0.pt']
    """
    return (naming or CheckpointNaming()).list(folder)


def write_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Writes ``payload`` to ``path`` atomically, then its digest; a failure leaves older files as they were."""
    digest: list[str] = []

    def save(temporary: Path) -> None:
        with open(temporary, "wb") as file:
            writer = DigestingWriter(file)
            torch.save(payload, cast("IO[bytes]", writer))  # torch.save calls only write and flush
        digest.append(writer.hexdigest())

    atomic_write(path, save, size_hint=sum(t.numel() * t.element_size() for _, t in named_tensors(payload)))
    try:
        atomic_write_text(_digest_path(path), f"{digest[0]}  {path.name}\n")
    except BaseException:
        path.unlink(missing_ok=True)  # a checkpoint without its digest would be trusted unchecked
        raise


def remove_checkpoint(path: Path) -> None:
    """Deletes a checkpoint and its digest."""
    path.unlink(missing_ok=True)
    _digest_path(path).unlink(missing_ok=True)


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """Loads a checkpoint with ``torch.load(weights_only=True)`` after checking its digest, if it has one.

    Raises:
        CheckpointError: The file is missing, truncated or corrupt, would run code when unpickled
            (nothing in it runs), or is not a composer_swa checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; check the path (load_path, or save_folder)")
    verify_digest(path)
    if path.is_symlink():
        verify_digest(path.resolve())  # a `latest` link: its target's digest sits beside the target
    payload = _load_weights_only(path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not a composer_swa checkpoint (it has no 'format': {CHECKPOINT_FORMAT!r}); "
            "to start from its weights, pass it as load_path with load_weights_only=True"
        )
    if int(payload.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {payload['version']}, newer than this composer_swa "
            f"reads ({CHECKPOINT_VERSION}); upgrade composer_swa"
        )
    return payload


def _load_weights_only(path: Path, mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)``, its failures turned into errors that name the file and the reason."""
    _check_torch_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refused to load {str(path)!r}: it is not a file of tensors and plain containers, and unpickling "
            f"it could run code from the file, so nothing in it was run ({_unpickler_reason(str(error))}). "
            f"{_WEIGHTS_ONLY_HINT}."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"{str(path)!r} is truncated or corrupt: {error}") from None
    except Exception as error:  # the unpickler fails on garbage with any error (IndexError, KeyError...)
        raise CheckpointError(
            f"{str(path)!r} is not a composer_swa checkpoint or torch.save file: it starts like one but does not "
            f"unpickle ({type(error).__name__}: {error})"
        ) from None


def _check_torch_file(path: Path) -> None:
    """Refuses a file that does not start as ``torch.save`` writes (a zip archive, or a pickle), naming it.

    Without this, torch's unpickler reads text or foreign binaries as opcodes and fails with an
    ``IndexError`` or ``KeyError`` that says nothing of the file.
    """
    with open(path, "rb") as file:
        head = file.read(512)
    if not head:
        raise CheckpointError(f"{str(path)!r} is empty, not a composer_swa checkpoint or torch.save file")
    if head.startswith(_ZIP_MAGIC) or head[0] == _PICKLE_PROTO or head[257:262] == b"ustar":  # ustar: torch's old tar format
        return
    raise CheckpointError(
        f"{str(path)!r} is not a composer_swa checkpoint or torch.save file (it starts with {head[:16]!r}, "
        "not a zip archive or a pickle); check the path"
    )


def read_model_weights(path: Path | str, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Model weights from a ``.safetensors`` file, a composer_swa checkpoint, or a ``torch.save``'d state dict.

    A state dict nested under ``state_dict`` or ``model`` is found; nothing is unpickled beyond tensors.
    A ``.sha256`` digest beside the file is checked first. With ``mmap``, a ``torch.save`` file's
    tensors are memory-mapped rather than read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist; check load_path")
    verify_digest(path)
    if path.is_symlink():
        verify_digest(path.resolve())
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except SafetensorError as error:
            raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {error}") from None
    payload = _load_weights_only(path, mmap=mmap)
    if isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT:
        payload = payload["state"]["model"]
    while isinstance(payload, dict) and len(payload) and not any(isinstance(v, torch.Tensor) for v in payload.values()):
        nested = payload.get("state_dict", payload.get("model"))
        if not isinstance(nested, dict):
            break
        payload = nested
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise CheckpointError(f"{str(path)!r} holds no state dict of tensors (looked at the top, 'state_dict' and 'model')")
    return payload


def _unpickler_reason(message: str) -> str:
    """The line of torch's long weights-only error that says what was refused."""
    for line in message.splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(" Please use", 1)[0].strip()
    return message.strip().splitlines()[0] if message.strip() else "unreadable pickle"
