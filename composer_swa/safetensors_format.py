"""The safetensors format without torch: headers read and checked, slices mapped, streams written.

Both ``swa-average`` back ends (torch, and NumPy for plain safetensors averages; see
:mod:`composer_swa.merging.numpy_average`) read and write through this module, so they accept the
same files, refuse the same ones with the same messages, and write the same bytes. PostHocEMA writes
its snapshots through it during training, so it sits beside :mod:`composer_swa.atomic_files`, outside
both halves, and imports nothing else of composer_swa.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import struct
from collections.abc import Iterator
from io import BufferedReader
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from composer_swa.atomic_files import atomic_write, atomic_write_text

__all__ = ["DTYPES", "SafetensorsFile", "SourceError", "StreamTensor", "safetensors_files", "write_stream"]

#: Safetensors dtype name -> (torch attribute name, bytes per element).
DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1), "U8": ("uint8", 1),
    "BOOL": ("bool", 1), "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1),
}  # fmt: skip
CHUNK_ELEMENTS = 1 << 21  # elements per slice: 8 MiB of fp32
HF_WEIGHTS = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin")


class SourceError(ValueError):
    """An input that cannot be read as model weights; the message names it and says why."""


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def slices(numel: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` of each slice of ``CHUNK_ELEMENTS`` elements (tensors are averaged slice by slice)."""
    step = CHUNK_ELEMENTS  # read when called: tests shrink it
    for start in range(0, numel, step):
        yield start, min(numel, start + step)


class SafetensorsFile:
    """One safetensors file: its header parsed and checked, its tensors' bytes mapped slice by slice.

    ``entries`` maps each name to ``(dtype name, shape, byte offset in the data section)``.
    """

    def __init__(self, path: Path) -> None:
        from composer_swa.checkpoint.digest import CheckpointError, verify_digest

        try:
            verify_digest(path)
        except CheckpointError as error:
            raise SourceError(str(error)) from None
        self.path = path
        self.file_size = path.stat().st_size
        self._map: mmap.mmap | None = None
        self.file: BufferedReader = open(path, "rb")  # noqa: SIM115 - closed by close()
        try:
            header = self._read_header()
            metadata = header.pop("__metadata__", None) or {}
            if not isinstance(metadata, dict):
                raise SourceError(f"{str(path)!r}: its header's __metadata__ is {metadata!r}, not an object of strings")
            self.metadata: dict[str, str] = metadata
            self.raw_entries: dict[str, tuple[str, tuple[int, ...], int]] = {n: self._entry(n, e) for n, e in header.items()}
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

    def _entry(self, name: str, entry: Any) -> tuple[str, tuple[int, ...], int]:
        """One header entry checked: a known dtype, a shape, and data offsets that match it and fit the file."""
        where = f"{str(self.path)!r}: tensor {name!r}"
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise SourceError(f"{where} needs 'dtype', 'shape' and 'data_offsets' in the header, got {entry!r}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise SourceError(f"{where} has dtype {dtype!r}, which this tool cannot read ({', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(type(size) is int and size >= 0 for size in shape):
            raise SourceError(f"{where} has shape {shape!r}; a shape is a list of sizes >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int and o >= 0 for o in offsets)):
            raise SourceError(f"{where} has data_offsets {offsets!r}; they are [begin, end] byte offsets")
        begin, end = offsets
        expected = _numel(tuple(shape)) * DTYPES[dtype][1]
        if end - begin != expected:
            raise SourceError(f"{where} has data_offsets {offsets!r} ({end - begin} bytes), its shape {shape} needs {expected}")
        if self.data_start + end > self.file_size:
            raise SourceError(f"{str(self.path)!r} is truncated: tensor {name!r} ends past the end of the file")
        return dtype, tuple(shape), begin

    def map_slice(self, name: str, start: int, stop: int) -> tuple[mmap.mmap | None, int, int]:
        """The bytes of elements ``[start, stop)``: ``(map, offset in it, size)``, valid until the next call.

        The slice is memory-mapped on its own and unmapped at the next read, so resident memory holds
        one slice per input, never the file. ``map`` is ``None`` for an empty slice.
        """
        dtype, _, offset = self.raw_entries[name]
        itemsize = DTYPES[dtype][1]
        size = (stop - start) * itemsize
        self.release()
        if size == 0:
            return None, 0, 0
        begin = self.data_start + offset + start * itemsize
        aligned = begin - begin % mmap.ALLOCATIONGRANULARITY
        if begin + size > self.file_size:
            raise SourceError(f"{str(self.path)!r} is truncated: tensor {name!r} ends past the end of the file")
        self._map = mmap.mmap(self.file.fileno(), begin + size - aligned, offset=aligned, access=mmap.ACCESS_READ)
        return self._map, begin - aligned, size

    def release(self) -> None:
        """Unmaps the last slice (views of it must be dropped first)."""
        if self._map is not None:
            with contextlib.suppress(BufferError):  # an array still views it: the map closes when the last view goes
                self._map.close()
            self._map = None

    def close(self) -> None:
        self.release()
        self.file.close()


def safetensors_files(path: Path) -> tuple[Path, list[Path]] | None:
    """The safetensors file(s) behind an input: ``(the weights file or index, its shards)``; ``None`` for other inputs.

    A model folder stands for the first of ``HF_WEIGHTS`` it holds; a ``model.safetensors*.index.json``
    for its shards, sorted by name.

    Raises:
        SourceError: The input does not exist, a folder holds no weights, or an index is broken.
    """
    if not path.exists():
        raise SourceError(f"input {str(path)!r} does not exist; check the path")
    if path.is_dir():
        for name in HF_WEIGHTS:
            if (path / name).is_file():
                return safetensors_files(path / name)
        raise SourceError(f"folder {str(path)!r} holds none of {', '.join(HF_WEIGHTS)}; pass a weights file instead")
    if path.name.endswith(".index.json"):
        try:
            weight_map: dict[str, str] = json.loads(path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise SourceError(f"{str(path)!r} is not a shard index (it needs a 'weight_map'): {error}") from None
        missing = sorted({shard for shard in weight_map.values() if not (path.parent / shard).is_file()})
        if missing:
            raise SourceError(f"shard index {str(path)!r} names shards that are not there: {missing}")
        shards = sorted(set(weight_map.values()))
        return (path, [path.parent / shard for shard in shards]) if path.name.startswith("model.safetensors") else None
    return (path, [path]) if path.suffix == ".safetensors" else None


class StreamTensor(Protocol):
    """What :func:`write_stream` writes: a name, a dtype name and shape, and the bytes, chunk after chunk."""

    @property
    def name(self) -> str: ...
    @property
    def dtype_name(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def nbytes(self) -> int: ...
    def byte_chunks(self) -> Iterator[Any]: ...


def _header(tensors: list[StreamTensor], metadata: dict[str, str]) -> bytes:
    entries: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for tensor in tensors:
        entries[tensor.name] = {
            "dtype": tensor.dtype_name,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data section starts 8-byte aligned
    return struct.pack("<Q", len(header)) + header


def _write_file(file: BinaryIO, tensors: list[StreamTensor], metadata: dict[str, str]) -> None:
    file.write(_header(tensors, metadata))
    for tensor in tensors:
        written = 0
        for chunk in tensor.byte_chunks():
            written += file.write(chunk)
        if written != tensor.nbytes:
            raise RuntimeError(f"tensor {tensor.name!r} produced {written} bytes, its header says {tensor.nbytes}")


def write_stream(
    tensors: list[StreamTensor], output: Path, metadata: dict[str, str], max_shard_bytes: int | None = None
) -> list[Path]:
    """Writes ``tensors`` to ``output`` (a ``.safetensors`` file, or a folder); returns the files written.

    A folder gets ``model.safetensors``, or, above ``max_shard_bytes``, ``model-0000K-of-0000N.safetensors``
    shards and ``model.safetensors.index.json``. A ``.safetensors`` path is never sharded. Each file
    is written atomically.
    """
    if output.suffix == ".safetensors" or max_shard_bytes is None:
        shards = [tensors]
    else:
        shards, size = [[]], 0
        for tensor in tensors:
            if shards[-1] and size + tensor.nbytes > max_shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append(tensor)
            size += tensor.nbytes
    if output.suffix == ".safetensors":
        paths = [output]
    elif len(shards) == 1:
        paths = [output / "model.safetensors"]
    else:
        paths = [output / f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))]
    for path, shard in zip(paths, shards):

        def write(temporary: Path, shard: list[StreamTensor] = shard) -> None:
            with open(temporary, "wb") as file:
                _write_file(file, shard, metadata)

        atomic_write(path, write)
    if len(paths) > 1:
        index = {
            "metadata": {"total_size": sum(t.nbytes for t in tensors)},
            "weight_map": {t.name: path.name for path, shard in zip(paths, shards) for t in shard},
        }
        atomic_write_text(output / "model.safetensors.index.json", json.dumps(index, indent=2) + "\n")
        paths.append(output / "model.safetensors.index.json")
    return paths


def output_metadata(inputs: list[str], weights: object, provenance: dict[str, object] | None) -> dict[str, str]:
    """The header metadata of an average: producer, inputs, weights (``None`` when per tensor), provenance."""
    import composer_swa

    return {
        "format": "pt",
        "producer": f"composer_swa {composer_swa.__version__} swa-average",
        "inputs": json.dumps(inputs),
        "weights": json.dumps(None if weights is None or callable(weights) else list(weights)),  # type: ignore[call-overload]
    } | {key: value if isinstance(value, str) else json.dumps(value) for key, value in (provenance or {}).items()}
