"""Post-hoc EMA reconstruction: any EMA length from a folder of PostHocEMA snapshots."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from composer_swa.averaging.posthoc_index import newest_first, read_index, solve_snapshot_weights
from composer_swa.merging.weighted_sum import weighted_sum

__all__ = ["PostHocAverage", "reconstruct"]

_FLOATING = {"F64", "F32", "F16", "BF16"}


@dataclass(frozen=True)
class PostHocAverage:
    """A reconstructed power EMA.

    Attributes:
        tensors: The averaged weights by name (fp32 for floating tensors; integer ones from the newest snapshot).
        weights: Each snapshot file's weight in the combination.
        residual: The fit's relative L2 error on the profile (see :class:`~composer_swa.averaging.power_ema.Reconstruction`).
        step: The step the EMA is read at.
        sigma_rel: Its length.
    """

    tensors: dict[str, torch.Tensor]
    weights: dict[str, float]
    residual: float
    step: int
    sigma_rel: float


def reconstruct(snapshot_dir: str | Path, sigma_rel: float, step: int | None = None) -> PostHocAverage:
    """The power EMA of length ``sigma_rel`` read at ``step`` (default: the last snapshot's), from stored snapshots.

    The weights solve the least-squares fit of EDM2 (Karras et al., CVPR 2024) over the closed-form
    inner products of the stored profiles (:func:`~composer_swa.averaging.power_ema.solve_weights`);
    the sum is the one arithmetic of every merge (:func:`~composer_swa.merging.weighted_sum.weighted_sum`,
    fp32, over the snapshots newest first, zero weights left out), so it is the file
    ``swa-average SNAPSHOT_DIR --method posthoc`` writes, bit for bit; memory holds the output and
    one input tensor. A tracked ``sigma_rel`` gives back its own snapshot (to rounding).

    Args:
        snapshot_dir: A folder PostHocEMA wrote (it holds ``posthoc_ema.json``).
        sigma_rel: The wanted length, in ``(0, 0.3003]``.
        step: The step to read the EMA at; only snapshots at or before it are used.

    Raises:
        FileNotFoundError: The folder has no index, or a listed file is missing.
        ValueError: The snapshots do not hold the same tensors.

    Example:
        >>> import tempfile
        >>> from composer_swa.integrations import AlgorithmRunner
        >>> from composer_swa.algorithms.posthoc_ema import PostHocEMA
        >>> model, folder = torch.nn.Linear(2, 1), tempfile.mkdtemp()
        >>> runner = AlgorithmRunner([PostHocEMA(snapshot_interval="10ba", snapshot_dir=folder)], model,
        ...                          torch.optim.SGD(model.parameters(), lr=0.1), [0] * 40, "40ba", loggers=[])
        >>> runner.fit_start()
        >>> for _ in range(40):
        ...     runner.batch_start()
        ...     runner.batch_end()
        >>> average = reconstruct(folder, 0.07)
        >>> sorted(average.tensors), average.step, average.residual < 0.05
        (['bias', 'weight'], 40, True)
    """
    folder = Path(snapshot_dir)
    used, fit = solve_snapshot_weights(read_index(folder), sigma_rel, step)
    weights = {entry.file: float(weight) for entry, weight in zip(used, fit.weights)}
    used = newest_first(used)
    newest = used[0].file
    with contextlib.ExitStack() as stack:
        handles: dict[str, Any] = {}
        for entry in used:
            if not (folder / entry.file).is_file():
                raise FileNotFoundError(f"the index of {str(folder)!r} lists {entry.file!r}, which is missing")
            handles[entry.file] = stack.enter_context(safe_open(folder / entry.file, framework="pt"))
        names = list(handles[newest].keys())
        for file, handle in handles.items():
            if sorted(handle.keys()) != sorted(names):
                raise ValueError(f"{file!r} holds other tensors than {newest!r}; the snapshots are not of one model")
        tensors = {name: _combine(name, handles, weights, newest) for name in names}
    return PostHocAverage(tensors, weights, fit.residual, max(entry.step for entry in used), float(sigma_rel))


def _combine(name: str, handles: dict[str, Any], weights: dict[str, float], newest: str) -> torch.Tensor:
    """``Σ wᵢ · tensorᵢ`` as every merge sums (see :mod:`~composer_swa.merging.weighted_sum`), one input at a
    time, in fp32; integer tensors from the newest file."""
    if handles[newest].get_slice(name).get_dtype() not in _FLOATING:
        return handles[newest].get_tensor(name)
    shape = tuple(handles[newest].get_slice(name).get_shape())
    for file, handle in handles.items():
        if (other := tuple(handle.get_slice(name).get_shape())) != shape:
            raise ValueError(f"tensor {name!r} has shape {other} in {file!r}, {shape} in {newest!r}")
    total, scratch = torch.empty(shape, dtype=torch.float32), torch.empty(shape, dtype=torch.float32)
    terms = ((handle.get_tensor(name), weights[file]) for file, handle in handles.items() if weights[file] != 0)
    return weighted_sum(terms, total, scratch)
