"""Averaging checkpoints after training: streamed tensor by tensor, slice by slice, in fp32.

Memory holds one slice of one input and one fp32 accumulator, whatever the number of inputs or the
size of the model. Floating tensors are averaged in fp32 whatever their dtype; integer and bool
tensors (step counters, ``num_batches_tracked``, masks) are copied from the first input that has
them, never averaged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import torch

from composer_swa import safetensors_format
from composer_swa.merging.compatibility import KeyPolicy, check_compatibility, require_compatible
from composer_swa.merging.inputs import open_sources
from composer_swa.merging.output import check_output, write_merged
from composer_swa.merging.recipes import TensorWeights, scaled_weights, weights_for
from composer_swa.merging.sources import TensorInfo, TensorSource
from composer_swa.merging.weighted_sum import weighted_sum
from composer_swa.merging.writer import OutputTensor
from composer_swa.safetensors_format import slices

__all__ = ["average_checkpoints", "cosine_similarities"]


def _averaged_chunks(
    sources: Sequence[TensorSource], name: str, holders: list[int], weights: list[float], buffers: torch.Tensor
) -> Iterator[torch.Tensor]:
    numel = sources[holders[0]].infos[name].numel
    terms = scaled_weights(weights, holders, len(sources))
    # One accumulator and one term for every slice of every tensor: fresh 8 MiB buffers per tensor
    # would fault their pages in again each time (see weighted_sum for the arithmetic).
    accumulator_buffer, term_buffer = buffers
    for start, stop in slices(numel):
        reads = ((sources[k].read(name, start, stop), weight) for k, weight in terms)
        yield weighted_sum(reads, accumulator_buffer[: stop - start], term_buffer[: stop - start])


def _copied_chunks(source: TensorSource, name: str) -> Iterator[torch.Tensor]:
    for start, stop in slices(source.infos[name].numel):
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
    if not inputs:
        raise ValueError("give at least one input checkpoint")
    output = check_output(output, inputs)
    sources = open_sources(inputs, target)
    try:
        report = require_compatible(sources, keys)
        floating = [info.numel for info in report.infos.values() if info.dtype.is_floating_point]
        buffers = torch.empty(2, min(max(floating, default=0), safetensors_format.CHUNK_ELEMENTS), dtype=torch.float32)
        tensors = []
        for name in report.names:
            info, holders = report.infos[name], report.present[name]
            if info.dtype.is_floating_point:
                values = weights_for(weights, name, len(sources))
                chunks = functools.partial(_averaged_chunks, sources, name, holders, values, buffers)
                tensors.append(OutputTensor(name, TensorInfo(dtype or info.dtype, info.shape), chunks))
            else:
                tensors.append(OutputTensor(name, info, functools.partial(_copied_chunks, sources[holders[0]], name)))
        return write_merged(tensors, output, sources, weights, provenance, max_shard_bytes)
    finally:
        for source in sources:
            source.close()


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
            for start, stop in slices(report.infos[name].numel):
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
