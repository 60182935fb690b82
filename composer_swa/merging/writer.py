"""Torch tensors for the safetensors stream: each output tensor's name and info, and its values as bytes.

:func:`~composer_swa.safetensors_format.write_stream` writes them (the header first, since
shapes are known up front, then each tensor's bytes in order, sharded above a cap, each file
atomically); the values are cast to the output dtype chunk by chunk, without a copy.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from composer_swa.merging.sources import SAFETENSORS_DTYPES, TensorInfo

__all__ = ["OutputTensor"]

_DTYPE_NAMES = {dtype: name for name, dtype in SAFETENSORS_DTYPES.items()}


@dataclass(frozen=True)
class OutputTensor:
    """One output tensor: its name and info, and how to produce its values, chunk after chunk."""

    name: str
    info: TensorInfo
    chunks: Callable[[], Iterator[torch.Tensor]]

    @property
    def nbytes(self) -> int:
        return self.info.numel * self.info.dtype.itemsize

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
