"""``swa-average`` of plain safetensors inputs with NumPy: the same bytes as the torch path, without importing torch.

Importing torch costs about 1.5 s, more than the whole streamed average of typical checkpoints, so a
command that only averages safetensors files with known weights would spend most of its time loading
a library it barely uses. This module is that command's arithmetic and nothing else: inputs are
read, checked and ordered, and the output is composed and written, by the same torch-free code as
the torch path (:mod:`~composer_swa.safetensors_format`, :mod:`~composer_swa.merging.compatibility`,
:mod:`~composer_swa.merging.output`). The arithmetic is
:func:`~composer_swa.merging.weighted_sum.weighted_sum`'s (whose docstring says why merges do not
go through the training kernel), rounding for rounding: each input is cast to fp32, multiplied by
its fp32 weight, then added to the fp32 accumulator (no fused multiply-add); bfloat16 is widened by
a 16-bit shift and narrowed with round-to-nearest-even, NaN becoming ``0xFFFF``, as torch does. The
tests compare both paths' files byte for byte.

Anything else (``torch.save`` inputs, float8 tensors, soups or ``--config``) takes the torch path.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from composer_swa import safetensors_format
from composer_swa.checkpoint.prefixes import strip_prefix
from composer_swa.merging.compatibility import KeyPolicy, require_compatible
from composer_swa.merging.inputs import open_sources
from composer_swa.merging.output import check_output, write_merged
from composer_swa.merging.recipes import TensorWeights, scaled_weights, weights_for
from composer_swa.safetensors_format import (
    DTYPES,
    SafetensorsFile,
    safetensors_files,
    slices,
)

__all__ = ["PlainSource", "average_safetensors", "is_plain_safetensors"]

# How the bytes of each dtype are viewed (bfloat16 as its bits; float8 is left to torch).
_RAW = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
        "I8": "i1", "U8": "u1", "BOOL": "u1"}  # fmt: skip
_FLOATING = ("F64", "F32", "F16", "BF16")
_OUTPUT_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


@dataclass(frozen=True)
class _Info:
    dtype: str  # the safetensors name, F32
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


class PlainSource:
    """A safetensors input (file, shards or model folder) read as NumPy arrays, like ``TensorSource``."""

    def __init__(self, path: Path) -> None:
        found = safetensors_files(path)
        assert found is not None, "is_plain_safetensors() admits only safetensors inputs"
        self.path = path
        self.folder = path if path.is_dir() else None
        self._files: list[SafetensorsFile] = []
        try:
            for shard in found[1]:
                self._files.append(SafetensorsFile(shard))
        except BaseException:
            self.close()
            raise
        self.metadata = dict(self._files[0].metadata)
        self._where = {name: file for file in self._files for name in file.raw_entries}
        self.infos = {name: _Info(*file.raw_entries[name][:2]) for name, file in self._where.items()}
        self.stripped_prefix = ""
        #: False when a tensor is float8, which only the torch path averages.
        self.averageable = all(info.dtype in _RAW for info in self.infos.values())

    def strip_prefix(self, prefix: str) -> None:
        if prefix:
            self._where = strip_prefix(self._where, prefix)
            self.infos = strip_prefix(self.infos, prefix)
            self.stripped_prefix += prefix

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Elements ``[start, stop)`` of ``name`` in their stored dtype: valid until this file's next read."""
        file = self._where[name]
        buffer, offset, size = file.map_slice(self.stripped_prefix + name, start, stop)
        raw = np.dtype(_RAW[self.infos[name].dtype])
        return np.frombuffer(buffer, raw, size // raw.itemsize, offset) if buffer is not None else np.empty(0, raw)

    def close(self) -> None:
        for file in self._files:
            file.close()


def is_plain_safetensors(inputs: Sequence[str]) -> bool:
    """Whether every input is a safetensors file, a ``model.safetensors`` index, or a folder of them."""
    return all(path.exists() and safetensors_files(path) is not None for path in map(Path, inputs))


def _widen(raw: np.ndarray, dtype: str, out: np.ndarray) -> None:
    """``out`` (fp32) = ``raw``, exactly as torch's ``copy_`` casts (bfloat16: its bits shifted up)."""
    if dtype == "BF16":
        bits = out.view(np.uint32)
        bits[...] = raw
        np.left_shift(bits, 16, out=bits)
    else:
        np.copyto(out, raw, casting="unsafe")


def _narrow(values: np.ndarray, dtype: str) -> np.ndarray:
    """fp32 ``values`` in the output dtype, as torch's ``.to(dtype)``: round to nearest even; bfloat16 NaN is 0xFFFF."""
    if dtype == "F32":
        return values
    if dtype != "BF16":
        return values.astype(_RAW[dtype])
    bits = values.view(np.uint32)
    rounded = ((bits + ((bits >> 16) & 1) + 0x7FFF) >> 16).astype(np.uint16)
    rounded[np.isnan(values)] = 0xFFFF
    return rounded


@dataclass(frozen=True)
class _Output:
    """One output tensor for :func:`~composer_swa.safetensors_format.write_stream`."""

    name: str
    dtype_name: str
    shape: tuple[int, ...]
    chunks: functools.partial[Iterator[np.ndarray]]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * DTYPES[self.dtype_name][1]

    def byte_chunks(self) -> Iterator[Any]:
        return self.chunks()


def _averaged(
    sources: list[PlainSource], name: str, holders: list[int], weights: list[float], dtype: str, buffers: np.ndarray
) -> Iterator[np.ndarray]:
    numel = sources[holders[0]].infos[name].numel
    terms = scaled_weights(weights, holders, len(sources))
    accumulator_buffer, term_buffer = buffers  # shared by every tensor, as in merge.py
    for start, stop in slices(numel):
        accumulator, term = accumulator_buffer[: stop - start], term_buffer[: stop - start]
        if not terms:
            accumulator.fill(0)  # every holder weighs zero: the sum of no term
        with np.errstate(all="ignore"):  # inf and NaN propagate silently, as in torch
            for index, (k, weight) in enumerate(terms):
                target = accumulator if index == 0 else term
                _widen(sources[k].read(name, start, stop), sources[k].infos[name].dtype, target)
                np.multiply(target, np.float32(weight), out=target)
                if index > 0:
                    np.add(accumulator, term, out=accumulator)
            narrowed = _narrow(accumulator, dtype)
        yield narrowed


def _copied(source: PlainSource, name: str) -> Iterator[np.ndarray]:
    for start, stop in slices(source.infos[name].numel):
        yield source.read(name, start, stop)


def average_safetensors(
    inputs: Sequence[str],
    output: str,
    weights: TensorWeights | None,
    dtype: str | None,
    keys: KeyPolicy,
    max_shard_bytes: int | None,
    provenance: dict[str, object],
) -> list[Path] | None:
    """:func:`~composer_swa.merging.merge.average_checkpoints` for plain safetensors inputs (see
    :func:`is_plain_safetensors`), with ``dtype`` a name (``bfloat16``); ``None`` when an input holds
    float8 tensors, which only the torch path averages (nothing is written then).

    Example:
        >>> import tempfile
        >>> from safetensors.numpy import load_file, save_file
        >>> folder = tempfile.mkdtemp()
        >>> save_file({"w": np.array([1.0, 2.0], np.float32)}, f"{folder}/a.safetensors")
        >>> save_file({"w": np.array([3.0, 6.0], np.float32)}, f"{folder}/b.safetensors")
        >>> _ = average_safetensors([f"{folder}/a.safetensors", f"{folder}/b.safetensors"], f"{folder}/avg.safetensors",
        ...                         None, None, "strict", None, {})
        >>> load_file(f"{folder}/avg.safetensors")["w"].tolist()
        [2.0, 4.0]
    """
    target = check_output(output, inputs)
    sources: list[PlainSource] = open_sources(inputs, None, PlainSource)
    try:
        if not all(source.averageable for source in sources):
            return None
        report = require_compatible(sources, keys)
        floating = [info.numel for info in report.infos.values() if info.dtype in _FLOATING]
        buffers = np.empty((2, min(max(floating, default=0), safetensors_format.CHUNK_ELEMENTS)), np.float32)
        tensors = []
        for name in report.names:
            info, holders = report.infos[name], report.present[name]
            if info.dtype in _FLOATING:
                values = weights_for(weights, name, len(sources))
                out = _OUTPUT_DTYPES[dtype] if dtype else info.dtype
                chunks = functools.partial(_averaged, sources, name, holders, values, out, buffers)
                tensors.append(_Output(name, out, info.shape, chunks))
            else:
                tensors.append(_Output(name, info.dtype, info.shape, functools.partial(_copied, sources[holders[0]], name)))
        return write_merged(tensors, target, sources, weights, provenance, max_shard_bytes)
    finally:
        for source in sources:
            source.close()
