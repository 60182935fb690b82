"""Checkpoints as streams of tensors: open many inputs, read one slice of one tensor at a time.

``swa-average`` must not hold N checkpoints in memory. Pages of a memory-mapped file count in
resident memory once touched, so safetensors files are never mapped whole: each read maps just its
slice (zero-copy from the page cache) and unmaps it at the next read. ``torch.save``
files (``.pt``, ``.bin``, composer_swa checkpoints) are loaded weights-only and memory-mapped.
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from composer_swa.checkpoint.prefixes import strip_prefix
from composer_swa.safetensors_format import DTYPES, HF_WEIGHTS, SafetensorsFile, SourceError, safetensors_files

__all__ = ["SAFETENSORS_DTYPES", "SourceError", "TensorInfo", "TensorSource", "open_source"]

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {name: getattr(torch, attribute) for name, (attribute, _) in DTYPES.items()}


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's dtype and shape, known without reading its data."""

    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class _SafetensorsFile(SafetensorsFile):
    """One safetensors file: its header parsed, its tensors read by byte offset as torch tensors."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._view: torch.Tensor | None = None
        self.entries: dict[str, tuple[TensorInfo, int]] = {
            name: (TensorInfo(SAFETENSORS_DTYPES[dtype], shape), begin)
            for name, (dtype, shape, begin) in self.raw_entries.items()
        }

    def read(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Elements ``[start, stop)``, straight from the page cache: valid until this file's next read."""
        self._view = None  # the tensor must let go of the buffer before the map closes
        buffer, offset, size = self.map_slice(name, start, stop)
        info = self.entries[name][0]
        if buffer is None:
            return torch.empty(0, dtype=info.dtype)
        with warnings.catch_warnings():  # read-only memory: we never write through it
            warnings.simplefilter("ignore", UserWarning)
            self._view = torch.frombuffer(buffer, dtype=torch.uint8, offset=offset, count=size)
        return self._view.view(info.dtype)

    def release(self) -> None:
        self._view = None
        super().release()


class TensorSource:
    """The model weights of one input, by name as in the file (see :meth:`strip_prefix`).

    Args:
        path: The input as given; used in messages and provenance.
        tensors: For ``torch.save`` inputs, the (memory-mapped) tensors by name.
        files: For safetensors inputs, the files holding them (several when sharded).
        folder: The model folder, when the input is one (its config files are copied to the output).
    """

    def __init__(
        self,
        path: Path,
        tensors: dict[str, torch.Tensor] | None = None,
        files: list[_SafetensorsFile] | None = None,
        folder: Path | None = None,
    ) -> None:
        self.path, self.folder = path, folder
        self._tensors = tensors or {}
        self._files = files or []
        #: The header metadata of the first safetensors file, if any.
        self.metadata: dict[str, str] = dict(self._files[0].metadata) if self._files else {}
        self._where: dict[str, tuple[_SafetensorsFile, str]] = {}
        for file in self._files:
            for name in file.entries:
                self._where[name] = (file, name)
        self.infos: dict[str, TensorInfo] = {
            name: TensorInfo(tensor.dtype, tuple(tensor.shape)) for name, tensor in self._tensors.items()
        } | {name: file.entries[original][0] for name, (file, original) in self._where.items()}
        #: The wrapper prefix removed from every name by :meth:`strip_prefix` (``""``: none).
        self.stripped_prefix = ""

    def strip_prefix(self, prefix: str) -> None:
        """Removes ``prefix``, which every name carries (a DDP or ``torch.compile`` wrapper's), from the names."""
        if prefix:
            self._tensors = strip_prefix(self._tensors, prefix)
            self._where = strip_prefix(self._where, prefix)
            self.infos = strip_prefix(self.infos, prefix)
            self.stripped_prefix += prefix

    def read(self, name: str, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Elements ``[start, stop)`` of tensor ``name``, flattened; valid until the next read (copy to keep)."""
        stop = self.infos[name].numel if stop is None else stop
        if name in self._tensors:
            return self._tensors[name].reshape(-1)[start:stop]
        file, original = self._where[name]
        return file.read(original, start, stop)

    def close(self) -> None:
        for file in self._files:
            file.close()


def open_source(path: str | Path) -> TensorSource:
    """Opens a safetensors file (or a sharded one's ``*.index.json``), a model folder, or a ``torch.save`` file.

    Example:
        >>> import tempfile
        >>> from safetensors.torch import save_file
        >>> path = Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> save_file({"linear.weight": torch.ones(2, 2)}, path)
        >>> source = open_source(path)
        >>> source.infos
        {'linear.weight': TensorInfo(dtype=torch.float32, shape=(2, 2))}
        >>> source.read("linear.weight").tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    path = Path(path)
    found = safetensors_files(path)
    if path.is_dir():
        weights = next(path / name for name in HF_WEIGHTS if (path / name).is_file())
        source = open_source(weights)
        source.path, source.folder = path, path
        return source
    if found is not None:
        return TensorSource(path, files=[_SafetensorsFile(shard) for shard in found[1]])
    if path.name.endswith(".index.json"):  # a pytorch_model.bin index: its shards are torch.save files
        tensors: dict[str, torch.Tensor] = {}
        for shard in sorted(set(json.loads(path.read_text())["weight_map"].values())):
            tensors.update(_load_state_dict(path.parent / shard))
        return TensorSource(path, tensors=tensors)
    return TensorSource(path, tensors=_load_state_dict(path))


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from composer_swa.checkpoint.files import CheckpointError, read_model_weights

    try:
        weights = read_model_weights(path, mmap=zipfile.is_zipfile(path))
    except CheckpointError as error:
        raise SourceError(str(error)) from None
    return weights
