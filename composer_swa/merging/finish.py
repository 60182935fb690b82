"""After averaging a model with batch norm: fresh statistics for the averaged weights, written back."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from composer_swa.averaging.bn import batch_norm_layers, recompute_batch_norm
from composer_swa.averaging.model_average import load_tracked_weights
from composer_swa.merging.sources import TensorInfo, open_source
from composer_swa.merging.writer import OutputTensor
from composer_swa.safetensors_format import write_stream

__all__ = ["recompute_batch_norm_in_output"]


def _one_chunk(tensor: torch.Tensor) -> Iterator[torch.Tensor]:
    yield tensor.reshape(-1)


def recompute_batch_norm_in_output(written: list[Path], model: torch.nn.Module, batches: Iterable[Any]) -> int | None:
    """Loads the averaged output into ``model``, recomputes its batch-norm statistics over ``batches``,
    and rewrites the output with them; returns the samples seen, or ``None`` when ``model`` has no batch norm.

    The running statistics of averaged weights are not the average of the inputs' statistics: they
    must describe the averaged network's own activations (Izmailov et al. 2018, §3.2).
    """
    if not batch_norm_layers(model):
        return None
    output = written[0] if len(written) == 1 else written[0].parent
    source = open_source(output)
    try:
        infos = dict(source.infos)
        weights = {name: source.read(name).reshape(info.shape).clone() for name, info in infos.items()}
        metadata = dict(source.metadata)
    finally:
        source.close()
    load_tracked_weights(model, weights)
    samples = recompute_batch_norm(model, batches)
    state = model.state_dict()
    tensors = [
        OutputTensor(name, TensorInfo(info.dtype, info.shape), functools.partial(_one_chunk, state[name].detach().cpu()))
        for name, info in infos.items()
    ]
    metadata["batch_norm_recomputed"] = json.dumps({"samples": samples})
    max_shard = None if len(written) == 1 else max(path.stat().st_size for path in written if path.suffix == ".safetensors")
    write_stream(list(tensors), output, metadata, max_shard)
    return samples
