"""Export: the final weights and every average as safetensors, with a JSON of what each file is."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from composer_swa.atomic_files import atomic_write, atomic_write_text
from composer_swa.checkpoint.finite import check_finite
from composer_swa.distributed.process_group import distributed_info
from composer_swa.distributed.sharded import full_model_state_dict, full_tensor, local_tensor
from composer_swa.distributed.wrapping import is_sharded
from composer_swa.loggers.strict_json import strict_dumps

if TYPE_CHECKING:
    from composer_swa.state import State

__all__ = ["export_weights"]


def export_weights(state: State, folder: Path | str, extra: dict[str, Any] | None = None) -> Path:
    """Writes ``model.safetensors`` (what ``state.model`` holds now) and, for each averaging algorithm,
    ``<key>-average.safetensors`` (its fp32 average) and ``<key>-training.safetensors`` (the training
    weights it replaced at FIT_END), plus ``export.json`` describing them. Returns ``export.json``'s path.

    Every file is written atomically, and only when each of its tensors is finite (else
    :class:`~composer_swa.checkpoint.finite.NonFiniteError`); a full disk raises
    :class:`~composer_swa.atomic_files.DiskFullError` naming the file. Tied weights are stored
    once in ``model.safetensors`` (load it with ``safetensors.torch.load_model``); the other files hold
    every tensor under its own name.

    Under torch.distributed every process must call it (FSDP2 shards are gathered, a collective) and
    process 0 alone writes.

    Args:
        state: The run's state, usually after ``fit()``.
        folder: Where to write; created if missing.
        extra: More metadata for ``export.json`` (e.g. the config path).

    Example:
        >>> import tempfile, torch
        >>> from composer_swa import State
        >>> state = State(model=torch.nn.Linear(2, 2), max_duration="1ep", train_dataloader=[0])
        >>> path = export_weights(state, tempfile.mkdtemp())
        >>> import json
        >>> sorted(json.loads(path.read_text())["files"])
        ['model.safetensors']
    """
    from composer_swa.state import unique_keys

    folder = Path(folder)
    writes = distributed_info().is_rank_zero
    timestamp = state.timestamp.state_dict()
    metadata = {"batch": str(timestamp["batch_count"]), "epoch": str(timestamp["epoch_count"])}
    files: dict[str, dict[str, Any]] = {}
    if is_sharded(state.model):
        model_weights = _own_copies(full_model_state_dict(state.model))
        if writes:
            _write_safetensors(folder / "model.safetensors", model_weights, metadata)
    else:
        model_weights = _untied(state.model.state_dict())
        if writes:
            _write_safetensors(folder / "model.safetensors", model_weights, metadata)
    files["model.safetensors"] = {"weights": "final", "dtype": _dtypes(model_weights.values())}
    for key, algorithm in zip(unique_keys(state.algorithms), state.algorithms):
        exported = algorithm.exported_weights()
        described = {"algorithm": key, **algorithm.summary()} if exported else {}
        for kind, tensors in exported.items():
            if tensors is None:
                continue
            name = f"{key}-{kind}.safetensors"
            own = _own_copies(tensors)
            if writes:
                _write_safetensors(folder / name, own, {**metadata, "algorithm": key})
            files[name] = {"weights": kind, "dtype": _dtypes(own.values()), **described}
    summary = {"timestamp": timestamp, "files": files, **(extra or {})}
    path = folder / "export.json"
    if writes:
        atomic_write_text(path, strict_dumps(summary, indent=2, default=str) + "\n")
    return path


def _untied(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tied tensor once, under the first of its names in sorted order (as ``safetensors.torch.save_model``
    keeps it, so ``load_model`` restores the ties); a tensor sharing storage with others without being
    them (``flat_parameters``) or not contiguous is copied, as safetensors stores each tensor on its own."""
    kept: dict[tuple[object, ...], str] = {}
    for name, tensor in sorted(weights.items()):
        kept.setdefault((tensor.device, tensor.dtype, tensor.data_ptr(), tuple(tensor.shape), tensor.stride()), name)
    untied = {name: weights[name].detach() for name in kept.values()}
    storages = Counter((t.device, t.untyped_storage().data_ptr()) for t in untied.values() if t.numel())
    return {
        name: t.contiguous().clone() if not t.is_contiguous() or storages[(t.device, t.untyped_storage().data_ptr())] > 1 else t
        for name, t in untied.items()
    }


def _own_copies(tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Whole, separate, contiguous copies: safetensors refuses tensors that share storage."""
    return {
        name: full_tensor(local_tensor(tensor), tensor).detach().contiguous().clone()
        for name, tensor in tensors.items()
        if isinstance(tensor, torch.Tensor)
    }


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    check_finite(tensors.items(), f"write {path}")
    atomic_write(path, lambda temporary: save_file(tensors, str(temporary), metadata=metadata), size_hint=_bytes(tensors))


def _bytes(tensors: dict[str, Any]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values() if isinstance(t, torch.Tensor))


def _dtypes(tensors: Any) -> list[str]:
    return sorted({str(tensor.dtype).removeprefix("torch.") for tensor in tensors if isinstance(tensor, torch.Tensor)})
