"""Writing torch tensors as a safetensors stream: the header first (shapes are known up front), then tensor bytes in order.

Large outputs are split into shards no bigger than a cap, with a ``model.safetensors.index.json`` as
Hugging Face writes it (see :func:`~composer_swa.merging.safetensors_format.write_stream`). Each file
is written atomically.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from composer_swa.merging.safetensors_format import write_stream
from composer_swa.merging.sources import SAFETENSORS_DTYPES, TensorInfo

__all__ = ["OutputTensor", "write_safetensors_stream"]

_DTYPE_NAMES = {dtype: name for name, dtype in SAFETENSORS_DTYPES.items()}


@dataclass(frozen=True)
class OutputTensor:
    """One output tensor: its name and info, and how to produce its values, chunk after chunk."""

    name: str
    info: TensorInfo
    chunks: Callable[[], Iterator[torch.Tensor]]

    @property
    def nbytes(self) -> int:
        return self.info.numel * torch.empty((), dtype=self.info.dtype).element_size()

    @property
    def dtype_name(self) -> str:
        return _DTYPE_NAMES[self.info.dtype]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.info.shape

    def byte_chunks(self) -> Iterator[Any]:
        """Each chunk cast to the output dtype, as its own bytes (without a copy, and without NumPy for bfloat16)."""
        for chunk in self.chunks():
            data = chunk.to(self.info.dtype).contiguous()
            nbytes = data.numel() * data.element_size()
            yield (ctypes.c_char * nbytes).from_address(data.data_ptr()) if nbytes else b""


def write_safetensors_stream(
    tensors: list[OutputTensor], output: Path, metadata: dict[str, str], max_shard_bytes: int | None = None
) -> list[Path]:
    """Writes ``tensors`` to ``output`` (a ``.safetensors`` file, or a folder); returns the files written.

    A folder gets ``model.safetensors``, or, above ``max_shard_bytes``, ``model-0000K-of-0000N.safetensors``
    shards and ``model.safetensors.index.json``. A ``.safetensors`` path is never sharded.
    """
    return write_stream(list(tensors), output, metadata, max_shard_bytes)
