"""Averaging checkpoints after training: streamed tensor by tensor, slice by slice, in fp32.

Memory holds one slice of one input and one fp32 accumulator, whatever the number of inputs or the
size of the model. Floating tensors are averaged in fp32 whatever their dtype; integer and bool
tensors (step counters, ``num_batches_tracked``, masks) are copied from the first input that has
them, never averaged.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from composer_swa.averaging.inputs import open_sources
from composer_swa.averaging.output import check_output, removed_on_failure
from composer_swa.averaging.sources import TensorInfo, TensorSource
from composer_swa.averaging.writer import OutputTensor, write_safetensors_stream

__all__ = [
    "CompatibilityReport",
    "IncompatibleCheckpoints",
    "TensorWeights",
    "average_checkpoints",
    "check_compatibility",
    "cosine_similarities",
    "normalize_weights",
]

KeyPolicy = Literal["strict", "union", "intersection"]
#: Weights over the inputs: one list for every tensor, or a function of the tensor's name.
TensorWeights = Sequence[float] | Callable[[str], Sequence[float]]
_CHUNK_ELEMENTS = 1 << 21  # 8 MiB of fp32 per slice
_WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")


class IncompatibleCheckpoints(ValueError):
    """The inputs differ in keys, shapes or dtypes; the message lists every difference."""


@dataclass
class CompatibilityReport:
    """What the inputs share: the output's tensors, and every difference found."""

    names: list[str]
    infos: dict[str, TensorInfo]
    present: dict[str, list[int]]
    differences: list[str] = field(default_factory=list)

    def text(self, paths: Sequence[str]) -> str:
        lines = [f"{len(paths)} inputs, {len(self.names)} tensors to write"]
        lines += [f"  [{k}] {path}" for k, path in enumerate(paths)]
        lines += [f"  difference: {line}" for line in self.differences] or ["  no differences in keys, shapes or dtypes"]
        return "\n".join(lines)


def check_compatibility(sources: Sequence[TensorSource], keys: KeyPolicy = "strict") -> CompatibilityReport:
    """Compares every input's tensors with the first's: keys (per ``keys``), shapes and dtypes.

    ``strict`` counts a key missing anywhere as a difference; ``union`` averages each key over the
    inputs that have it; ``intersection`` keeps only the keys all inputs have. Shapes and dtypes of
    shared keys must always agree.
    """
    names: list[str] = []
    for source in sources:
        names += [name for name in source.infos if name not in set(names)]
    present = {name: [k for k, source in enumerate(sources) if name in source.infos] for name in names}
    differences = []
    kept = []
    for name in names:
        holders = present[name]
        if len(holders) < len(sources):
            if keys == "intersection":
                continue
            if keys == "strict":
                lacking = [k for k in range(len(sources)) if k not in holders]
                differences.append(f"{name!r} is in inputs {holders} but not in {lacking}")
                continue
        first = sources[holders[0]].infos[name]
        for k in holders[1:]:
            other = sources[k].infos[name]
            if other.shape != first.shape:
                differences.append(
                    f"{name!r} has shape {list(first.shape)} in input {holders[0]}, {list(other.shape)} in input {k}"
                )
            elif other.dtype != first.dtype:
                differences.append(f"{name!r} has dtype {first.dtype} in input {holders[0]}, {other.dtype} in input {k}")
        kept.append(name)
    infos = {name: sources[present[name][0]].infos[name] for name in kept}
    return CompatibilityReport(kept, infos, {name: present[name] for name in kept}, differences)


def _weights_for(weights: TensorWeights | None, name: str, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    values = list(weights(name) if callable(weights) else weights)
    if len(values) != count:
        raise ValueError(f"got {len(values)} weights for {count} inputs (tensor {name!r}); give one weight per input")
    return values


def _slices(numel: int) -> Iterator[tuple[int, int]]:
    for start in range(0, numel, _CHUNK_ELEMENTS):
        yield start, min(numel, start + _CHUNK_ELEMENTS)


def _averaged_chunks(
    sources: Sequence[TensorSource], name: str, holders: list[int], weights: list[float]
) -> Iterator[torch.Tensor]:
    total = sum(weights[k] for k in holders)
    # With --union a key some inputs lack is averaged over those that have it, its weights rescaled.
    scale = 1.0 if len(holders) == len(sources) or total == 0 else sum(weights) / total
    numel = sources[holders[0]].infos[name].numel
    buffer = torch.empty(min(numel, _CHUNK_ELEMENTS), dtype=torch.float32)  # one accumulator, reused by every slice
    for start, stop in _slices(numel):
        accumulator = buffer[: stop - start]
        for index, k in enumerate(holders):
            piece = sources[k].read(name, start, stop)
            weight = weights[k] * scale
            if index == 0:
                torch.mul(piece, weight, out=accumulator)
            else:
                accumulator.add_(piece, alpha=weight)  # mixed dtypes promote to the fp32 accumulator
        yield accumulator


def _copied_chunks(source: TensorSource, name: str) -> Iterator[torch.Tensor]:
    for start, stop in _slices(source.infos[name].numel):
        yield source.read(name, start, stop)


def average_checkpoints(
    inputs: Sequence[str | Path],
    output: str | Path,
    weights: TensorWeights | None = None,
    dtype: torch.dtype | None = None,
    keys: KeyPolicy = "strict",
    max_shard_bytes: int | None = 5 * 1024**3,
    provenance: dict[str, object] | None = None,
    target: Collection[str] | None = None,
) -> list[Path]:
    """Averages checkpoints of one architecture into safetensors, streaming; returns the files written.

    Args:
        inputs: Safetensors files, sharded indexes, model folders, composer_swa checkpoints, or
            ``torch.save`` state dicts (read weights-only).
        output: A ``.safetensors`` file, or a folder (sharded above ``max_shard_bytes``; the first
            model folder's config and tokenizer files are copied into it). Not an input; a failed
            write (a full disk) leaves nothing behind.
        weights: One weight per input, or a function from a tensor name to them (layer-wise
            weights); ``None`` is the uniform average. Weights are used as given: normalize first.
        dtype: Output dtype of floating tensors; default: the inputs'.
        keys: ``strict`` (every input has every key), ``union`` or ``intersection``.
        max_shard_bytes: Shard size cap for folder outputs.
        provenance: More metadata for the output's header (method, scores...).
        target: The names the output must fit (a model's ``state_dict()`` keys), if known: a wrapper
            prefix on every key of an input is stripped only to fit it (see :func:`open_sources`).

    Raises:
        IncompatibleCheckpoints: Listing every key, shape and dtype difference.
        ValueError: ``output`` is an input, or neither a ``.safetensors`` file nor a folder.

    Example:
        >>> import tempfile
        >>> from safetensors.torch import load_file, save_file
        >>> folder = Path(tempfile.mkdtemp())
        >>> save_file({"w": torch.tensor([1.0, 2.0])}, folder / "a.safetensors")
        >>> save_file({"w": torch.tensor([3.0, 6.0])}, folder / "b.safetensors")
        >>> _ = average_checkpoints([folder / "a.safetensors", folder / "b.safetensors"], folder / "avg.safetensors")
        >>> load_file(folder / "avg.safetensors")["w"].tolist()
        [2.0, 4.0]
    """
    import composer_swa

    if not inputs:
        raise ValueError("give at least one input checkpoint")
    output = check_output(output, inputs)
    sources = open_sources(inputs, target)
    try:
        report = check_compatibility(sources, keys)
        if report.differences:
            raise IncompatibleCheckpoints(
                f"the {len(sources)} inputs do not match ({len(report.differences)} differences; "
                "--union/--intersection relax keys only):\n" + report.text([str(s.path) for s in sources])
            )
        tensors = []
        for name in report.names:
            info, holders = report.infos[name], report.present[name]
            if info.dtype.is_floating_point:
                values = _weights_for(weights, name, len(sources))
                chunks = functools.partial(_averaged_chunks, sources, name, holders, values)
                tensors.append(OutputTensor(name, TensorInfo(dtype or info.dtype, info.shape), chunks))
            else:
                tensors.append(OutputTensor(name, info, functools.partial(_copied_chunks, sources[holders[0]], name)))
        metadata = {
            "format": "pt",
            "producer": f"composer_swa {composer_swa.__version__} swa-average",
            "inputs": json.dumps([str(s.path) for s in sources]),
            "weights": json.dumps(None if weights is None or callable(weights) else list(weights)),
        } | {key: value if isinstance(value, str) else json.dumps(value) for key, value in (provenance or {}).items()}
        with removed_on_failure(output):  # a full disk mid-way leaves no shard behind
            written = write_safetensors_stream(tensors, output, metadata, max_shard_bytes)
            folder_input = next((s.folder for s in sources if s.folder is not None), None)
            if output.suffix != ".safetensors" and folder_input is not None:
                _copy_model_files(folder_input, output)
        return written
    finally:
        for source in sources:
            source.close()


def _copy_model_files(source: Path, output: Path) -> None:
    """Config, tokenizer and other small files of a model folder; never its weights."""
    for path in source.iterdir():
        if path.is_file() and not path.name.endswith(_WEIGHT_FILES) and not (output / path.name).exists():
            shutil.copy2(path, output / path.name)


def cosine_similarities(inputs: Sequence[str | Path], keys: KeyPolicy = "intersection") -> list[list[float]]:
    """Cosine similarity between the inputs' floating weights, flattened and concatenated (streamed).

    Tensors that not every input has, or whose shapes differ, are left out.
    """
    sources = open_sources(inputs)
    try:
        report = check_compatibility(sources, keys)
        count = len(sources)
        dots = torch.zeros(count, count, dtype=torch.float64)
        for name in report.names:
            if not report.infos[name].dtype.is_floating_point or len(report.present[name]) < count:
                continue
            if any(source.infos[name].shape != report.infos[name].shape for source in sources):
                continue  # a shape difference, which the compatibility report names; there is nothing to compare
            for start, stop in _slices(report.infos[name].numel):
                stacked = torch.stack([source.read(name, start, stop).to(torch.float64) for source in sources])
                dots += stacked @ stacked.T
        norms = dots.diagonal().sqrt()
        return [
            [float(dots[i, j] / (norms[i] * norms[j])) if norms[i] * norms[j] > 0 else math.nan for j in range(count)]
            for i in range(count)
        ]
    finally:
        for source in sources:
            source.close()


def normalize_weights(weights: Sequence[float], normalize: bool = True) -> list[float]:
    """Weights divided by their sum; without ``normalize``, as given, with a warning when unusual.

    Example:
        >>> normalize_weights([1, 1, 2])
        [0.25, 0.25, 0.5]
    """
    values = [float(w) for w in weights]
    if not values or any(not math.isfinite(w) for w in values):
        raise ValueError(f"weights must be finite numbers, got {list(weights)!r}")
    if normalize:
        total = sum(values)
        if total == 0:
            raise ValueError(f"weights sum to 0 and cannot be normalized, got {values!r}")
        return [w / total for w in values]
    if any(w < 0 for w in values):
        warnings.warn(f"negative weights {values!r}: the result extrapolates beyond the inputs", stacklevel=2)
    if not math.isclose(sum(values), 1.0, rel_tol=1e-6):
        warnings.warn(f"weights sum to {sum(values):g}, not 1: the result is scaled by that factor", stacklevel=2)
    return values
