"""Checkpoints as streams of tensors: open many inputs, read one slice of one tensor at a time.

``swa-average`` must not hold N checkpoints in memory. Pages of a memory-mapped file count in
resident memory once touched, so safetensors files are never mapped whole: each read maps just its
slice (zero-copy from the page cache) and unmaps it at the next read. ``torch.save``
files (``.pt``, ``.bin``, composer_swa checkpoints) are loaded weights-only and memory-mapped.
"""

from __future__ import annotations

import json
import mmap
import struct
import warnings
import zipfile
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any

import torch

from composer_swa.averaging.prefixes import strip_prefix

__all__ = ["SAFETENSORS_DTYPES", "SourceError", "TensorInfo", "TensorSource", "describe", "open_source"]

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}  # fmt: skip
_HF_WEIGHTS = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin")


class SourceError(ValueError):
    """An input that cannot be read as model weights; the message names it and says why."""


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's dtype and shape, known without reading its data."""

    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


class _SafetensorsFile:
    """One safetensors file: its header parsed, its tensors read by byte offset."""

    def __init__(self, path: Path) -> None:
        from composer_swa.checkpoint.files import CheckpointError, verify_digest

        try:
            verify_digest(path)
        except CheckpointError as error:
            raise SourceError(str(error)) from None
        self.path = path
        self.file_size = path.stat().st_size
        self._map: mmap.mmap | None = None
        self._view: torch.Tensor | None = None
        self.file: BufferedReader = open(path, "rb")  # noqa: SIM115 - closed by TensorSource.close
        try:
            header = self._read_header()
            metadata = header.pop("__metadata__", None) or {}
            if not isinstance(metadata, dict):
                raise SourceError(f"{str(path)!r}: its header's __metadata__ is {metadata!r}, not an object of strings")
            self.metadata: dict[str, str] = metadata
            self.entries: dict[str, tuple[TensorInfo, int]] = {name: self._entry(name, e) for name, e in header.items()}
        except SourceError:
            self.file.close()
            raise

    def _read_header(self) -> dict[str, Any]:
        """The JSON header, after checking that its length fits the file (garbage would ask for exabytes)."""
        where = f"{str(self.path)!r} is not a safetensors file"
        prefix = self.file.read(8)
        if len(prefix) < 8:
            raise SourceError(f"{where}: it has {len(prefix)} bytes, fewer than the 8 of a header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > self.file_size - 8:
            raise SourceError(
                f"{where}: its first 8 bytes give a header of {length} bytes, but the file has {self.file_size} bytes"
            )
        try:
            header = json.loads(self.file.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SourceError(f"{where} (its header does not parse as JSON: {error})") from None
        if not isinstance(header, dict):
            raise SourceError(f"{where}: its header is a JSON {type(header).__name__}, not an object of tensors")
        self.data_start = 8 + length
        return header

    def _entry(self, name: str, entry: Any) -> tuple[TensorInfo, int]:
        """One header entry checked: a known dtype, a shape, and data offsets that match it and fit the file."""
        where = f"{str(self.path)!r}: tensor {name!r}"
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise SourceError(f"{where} needs 'dtype', 'shape' and 'data_offsets' in the header, got {entry!r}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
            raise SourceError(f"{where} has dtype {dtype!r}, which this tool cannot read ({', '.join(SAFETENSORS_DTYPES)})")
        if not isinstance(shape, list) or not all(type(size) is int and size >= 0 for size in shape):
            raise SourceError(f"{where} has shape {shape!r}; a shape is a list of sizes >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int and o >= 0 for o in offsets)):
            raise SourceError(f"{where} has data_offsets {offsets!r}; they are [begin, end] byte offsets")
        info = TensorInfo(SAFETENSORS_DTYPES[dtype], tuple(shape))
        begin, end = offsets
        expected = info.numel * torch.empty((), dtype=info.dtype).element_size()
        if end - begin != expected:
            raise SourceError(f"{where} has data_offsets {offsets!r} ({end - begin} bytes), its shape {shape} needs {expected}")
        if self.data_start + end > self.file_size:
            raise SourceError(f"{str(self.path)!r} is truncated: tensor {name!r} ends past the end of the file")
        return info, begin

    def read(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Elements ``[start, stop)``, straight from the page cache: valid until this file's next read.

        The slice is memory-mapped on its own and unmapped at the next read, so resident memory holds
        one slice per input, never the file.
        """
        info, offset = self.entries[name]
        itemsize = torch.empty((), dtype=info.dtype).element_size()
        size = (stop - start) * itemsize
        self._release()
        if size == 0:
            return torch.empty(0, dtype=info.dtype)
        begin = self.data_start + offset + start * itemsize
        aligned = begin - begin % mmap.ALLOCATIONGRANULARITY
        if begin + size > self.file_size:
            raise SourceError(f"{str(self.path)!r} is truncated: tensor {name!r} ends past the end of the file")
        self._map = mmap.mmap(self.file.fileno(), begin + size - aligned, offset=aligned, access=mmap.ACCESS_READ)
        with warnings.catch_warnings():  # read-only memory: we never write through it
            warnings.simplefilter("ignore", UserWarning)
            self._view = torch.frombuffer(self._map, dtype=torch.uint8, offset=begin - aligned, count=size)
        return self._view.view(info.dtype)

    def _release(self) -> None:
        if self._map is not None:
            self._view = None  # the tensor must let go of the buffer before the map closes
            self._map.close()
            self._map = None

    def close(self) -> None:
        self._release()
        self.file.close()


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
    if not path.exists():
        raise SourceError(f"input {str(path)!r} does not exist; check the path")
    if path.is_dir():
        for name in _HF_WEIGHTS:
            if (path / name).is_file():
                source = open_source(path / name)
                source.path, source.folder = path, path
                return source
        raise SourceError(f"folder {str(path)!r} holds none of {', '.join(_HF_WEIGHTS)}; pass a weights file instead")
    if path.name.endswith(".index.json"):
        return _open_sharded(path)
    if path.suffix == ".safetensors":
        return TensorSource(path, files=[_SafetensorsFile(path)])
    return TensorSource(path, tensors=_load_state_dict(path))


def _open_sharded(index: Path) -> TensorSource:
    try:
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise SourceError(f"{str(index)!r} is not a shard index (it needs a 'weight_map'): {error}") from None
    missing = sorted({shard for shard in weight_map.values() if not (index.parent / shard).is_file()})
    if missing:
        raise SourceError(f"shard index {str(index)!r} names shards that are not there: {missing}")
    shards = sorted(set(weight_map.values()))
    if index.name.startswith("model.safetensors"):
        return TensorSource(index, files=[_SafetensorsFile(index.parent / shard) for shard in shards])
    tensors: dict[str, torch.Tensor] = {}
    for shard in shards:
        tensors.update(_load_state_dict(index.parent / shard))
    return TensorSource(index, tensors=tensors)


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from composer_swa.checkpoint.files import CheckpointError, read_model_weights

    try:
        weights = read_model_weights(path, mmap=zipfile.is_zipfile(path))
    except CheckpointError as error:
        raise SourceError(str(error)) from None
    return weights


def describe(infos: dict[str, TensorInfo]) -> dict[str, Any]:
    """Tensor count, elements and bytes of a source, for reports."""
    numel = sum(info.numel for info in infos.values())
    size = sum(info.numel * torch.empty((), dtype=info.dtype).element_size() for info in infos.values())
    return {"tensors": len(infos), "elements": numel, "bytes": size}
