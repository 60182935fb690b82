"""Merging checkpoints tensor by tensor with a per-tensor method, streamed slice by slice in fp32.

For each output tensor of the plan (:mod:`~composer_swa.merging.plan`), the method's kernel
(:mod:`~composer_swa.merging.methods.kernel`) sees its inputs' values (and the base model's) as
slices of rows along dim 0, cast to fp32 (bf16 and fp16 inputs are computed in fp32); a tensor of
at most ``CHUNK_ELEMENTS / 8`` elements (1 MiB of fp32) is one slice, read once. A method that needs statistics of the
whole tensor reads its slices once more per first pass. Memory holds the slices of one tensor's
inputs and a few fp32 temporaries of that size, never a whole checkpoint. Integer and bool tensors
are copied from the base model, else the first input.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from composer_swa import safetensors_format
from composer_swa.merging.inputs import open_sources
from composer_swa.merging.methods.kernel import Resolved, TensorKernel, TensorSlice
from composer_swa.merging.methods.registry import MergeInputs, MergeMethod, MergeOptions
from composer_swa.merging.output import check_output, write_merged
from composer_swa.merging.plan import TensorPlan, plan_tensors
from composer_swa.merging.recipes import layer_index
from composer_swa.merging.sources import TensorInfo, TensorSource
from composer_swa.merging.writer import OutputTensor

__all__ = ["load_kernel", "merge_tensors"]


def load_kernel(method: MergeMethod) -> TensorKernel:
    """The method's kernel, imported from its ``"module:attribute"``."""
    assert method.kernel is not None
    module, attribute = method.kernel.split(":")
    kernel: TensorKernel = getattr(importlib.import_module(module), attribute)
    return kernel


def _merged_chunks(
    sources: Sequence[TensorSource], plan: TensorPlan, kernel: TensorKernel, params: Resolved, shape: tuple[int, ...],
    round_to: torch.dtype | None,
) -> Iterator[torch.Tensor]:  # fmt: skip
    shape = shape or (1,)
    row = 1
    for size in shape[1:]:
        row *= size
    rows = shape[0]
    # A method makes several fp32 temporaries of a slice per input: slices an eighth of the average's keep them small.
    elements = max(1, safetensors_format.CHUNK_ELEMENTS // 8)
    whole = kernel.whole(params, shape) or rows * row <= elements
    step = rows if whole else max(1, elements // max(row, 1))
    spans = [(start, min(rows, start + step)) for start in range(0, rows, step)] or [(0, 0)]

    def load(k: int, name: str, start: int, stop: int) -> torch.Tensor:
        view = sources[k].read(name, start * row, stop * row)
        if round_to is not None:
            view = view.to(round_to)  # a recipe's dtype: inputs rounded to it first, as mergekit loads them
        return view.to(torch.float32, copy=True).reshape(stop - start, *shape[1:])

    def read(start: int, stop: int) -> TensorSlice:
        tensors = [load(k, name, start, stop) for k, name in plan.entries]
        base = load(*plan.base, start, stop) if plan.base is not None else None
        return TensorSlice(plan.name, shape, start, tensors, base, [k for k, _ in plan.entries], [n for _, n in plan.entries])

    passes = kernel.passes(params, shape)
    stats: dict[str, Any] = {}
    if len(spans) == 1:  # one read serves every pass and the merge
        piece = read(*spans[0])
        for step_pass in passes:
            step_pass.finish(step_pass.accumulate(piece, params, stats), params, stats, shape)
        yield kernel.merge(piece, params, stats).reshape(-1)
        return
    for step_pass in passes:
        total: torch.Tensor | None = None
        for span in spans:
            part = step_pass.accumulate(read(*span), params, stats)
            total = part if total is None else total.add_(part)
        assert total is not None
        step_pass.finish(total, params, stats, shape)
    for span in spans:
        yield kernel.merge(read(*span), params, stats).reshape(-1)


def _copied_chunks(source: TensorSource, name: str) -> Iterator[torch.Tensor]:
    for start, stop in safetensors_format.slices(source.infos[name].numel):
        yield source.read(name, start, stop)


def merge_tensors(
    method: MergeMethod,
    options: MergeOptions,
    inputs: MergeInputs,
    output: str | Path,
    dtype: torch.dtype | None = None,
    round_to: torch.dtype | None = None,
    max_shard_bytes: int | None = 5 * 1024**3,
    provenance: dict[str, object] | None = None,
    model_files: int | None = None,
) -> list[Path]:
    """Merges ``inputs`` by a per-tensor ``method`` into safetensors, streaming; returns the files written.

    Args:
        method: A registered method with a ``kernel`` (``METHODS["ties"]``...).
        options: Its options: base model, parameters, slices, seed.
        inputs: The input paths (any kind :func:`~composer_swa.merging.sources.open_source` reads).
        output: A ``.safetensors`` file or a folder, as for :func:`~composer_swa.merging.merge.average_checkpoints`.
        dtype: Output dtype of floating tensors; default: the inputs'.
        round_to: Rounds inputs to this dtype before merging (a recipe's ``dtype``).
        max_shard_bytes: Shard size cap for folder outputs.
        provenance: More metadata for the output's header.
        model_files: The input whose model folder's config and tokenizer files a folder output gets
            (default: the first model folder among the inputs).

    Raises:
        PlanError: Listing every missing tensor, shape difference and missing parameter.

    Example:
        >>> import tempfile
        >>> from safetensors.torch import load_file, save_file
        >>> from composer_swa.merging.methods import METHODS
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name, values in [("base", [0.0, 0.0]), ("a", [1.0, -2.0]), ("b", [3.0, 2.0])]:
        ...     save_file({"w": torch.tensor(values)}, folder / f"{name}.safetensors")
        >>> paths = tuple(str(folder / f"{n}.safetensors") for n in ("base", "a", "b"))
        >>> options = MergeOptions(base_model=0, settings={"weight": 1.0})
        >>> _ = merge_tensors(METHODS["ties"], options, MergeInputs(paths), folder / "ties.safetensors")
        >>> load_file(folder / "ties.safetensors")["w"].tolist()  # signs elected: + for both, then a disjoint mean
        [2.0, 2.0]
    """
    output = check_output(output, inputs.paths)
    kernel = load_kernel(method)
    sources = open_sources(inputs.paths, inputs.target)
    try:
        plans = plan_tensors(method, options, [source.infos for source in sources], list(inputs.paths))
        context = kernel.prepare(options, inputs, plans) if kernel.prepare is not None else None
        tensors = []
        for plan in plans:
            k, name = plan.entries[0] if plan.entries else plan.base  # type: ignore[misc]
            info = sources[k].infos[name]
            if info.dtype.is_floating_point:
                params = Resolved(plan.shared, plan.each, options.seed, context)
                chunks = functools.partial(_merged_chunks, sources, plan, kernel, params, info.shape, round_to)
                tensors.append(OutputTensor(plan.name, TensorInfo(dtype or info.dtype, info.shape), chunks))
            else:
                k, name = plan.base if plan.base is not None else plan.entries[0]
                tensors.append(OutputTensor(plan.name, info, functools.partial(_copied_chunks, sources[k], name)))
        layers = _layer_count(plans) if options.slices else None
        folder = sources[model_files].folder if model_files is not None else None
        return write_merged(tensors, output, sources, None, provenance, max_shard_bytes, folder, layers)
    finally:
        for source in sources:
            source.close()


def _layer_count(plans: Sequence[TensorPlan]) -> int:
    return max((index for plan in plans if (index := layer_index(plan.name)) is not None), default=-1) + 1
