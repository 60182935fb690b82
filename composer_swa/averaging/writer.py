"""Writing safetensors as a stream: the header first (shapes are known up front), then tensor bytes in order.

Large outputs are split into shards no bigger than a cap, with a ``model.safetensors.index.json`` as
Hugging Face writes it. Each file is written atomically.
"""

from __future__ import annotations

import ctypes
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from composer_swa.averaging.sources import SAFETENSORS_DTYPES, TensorInfo
from composer_swa.checkpoint.atomic import atomic_write, atomic_write_text

__all__ = ["OutputTensor", "write_safetensors_stream"]

_DTYPE_NAMES = {dtype: name for name, dtype in SAFETENSORS_DTYPES.items()}


@dataclass(frozen=True)
class OutputTensor:
    """One output tensor: its name and info, and how to produce its bytes, chunk after chunk."""

    name: str
    info: TensorInfo
    chunks: Callable[[], Iterator[torch.Tensor]]

    @property
    def nbytes(self) -> int:
        return self.info.numel * torch.empty((), dtype=self.info.dtype).element_size()


def _header(tensors: list[OutputTensor], metadata: dict[str, str]) -> bytes:
    entries: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for tensor in tensors:
        entries[tensor.name] = {
            "dtype": _DTYPE_NAMES[tensor.info.dtype],
            "shape": list(tensor.info.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data section starts 8-byte aligned
    return struct.pack("<Q", len(header)) + header


def _write_file(file: BinaryIO, tensors: list[OutputTensor], metadata: dict[str, str]) -> None:
    file.write(_header(tensors, metadata))
    for tensor in tensors:
        written = 0
        for chunk in tensor.chunks():
            data = chunk.to(tensor.info.dtype).contiguous()
            nbytes = data.numel() * data.element_size()
            # The tensor's own bytes, without a copy (and without needing NumPy for bfloat16).
            file.write((ctypes.c_char * nbytes).from_address(data.data_ptr()) if nbytes else b"")
            written += nbytes
        if written != tensor.nbytes:
            raise RuntimeError(f"tensor {tensor.name!r} produced {written} bytes, its header says {tensor.nbytes}")


def write_safetensors_stream(
    tensors: list[OutputTensor], output: Path, metadata: dict[str, str], max_shard_bytes: int | None = None
) -> list[Path]:
    """Writes ``tensors`` to ``output`` (a ``.safetensors`` file, or a folder); returns the files written.

    A folder gets ``model.safetensors``, or, above ``max_shard_bytes``, ``model-0000K-of-0000N.safetensors``
    shards and ``model.safetensors.index.json``. A ``.safetensors`` path is never sharded.
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

        def write(temporary: Path, shard: list[OutputTensor] = shard) -> None:
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
