"""``load_weights_only``: a model's weights from a file another program may have written, keyed to fit the model."""

from __future__ import annotations

from pathlib import Path

import torch

from composer_swa.checkpoint.files import CheckpointError, read_model_weights, verify_digest
from composer_swa.checkpoint.prefixes import describe_stripped, strip_prefix, wrapper_prefix

__all__ = ["load_model_weights"]


def load_model_weights(model: torch.nn.Module, path: Path) -> str | None:
    """Loads the weights in ``path`` into ``model`` (strictly: every key, every shape).

    A wrapper prefix (``module.``, ``_orig_mod.``) is stripped only when every key in the file
    carries it and the model's keys do not; the returned note says what was stripped (``None``
    when nothing was). Tied weights that ``safetensors.torch.save_model`` stored once load into
    every name that shares them.

    Raises:
        CheckpointError: The file cannot be read, its ``.sha256`` digest does not match, or its weights
            do not fit the model.

    Example:
        >>> import tempfile
        >>> from safetensors.torch import save_file
        >>> path = Path(tempfile.mkdtemp()) / "ddp.safetensors"
        >>> save_file({"module.weight": torch.ones(1, 2), "module.bias": torch.zeros(1)}, path)
        >>> load_model_weights(torch.nn.Linear(2, 1), path)  # doctest: +ELLIPSIS
        "stripped the wrapper prefix 'module.' from every key of ..."
    """
    model_state = model.state_dict()
    try:
        if path.suffix == ".safetensors":
            from safetensors import SafetensorError, safe_open

            verify_digest(path)
            try:
                with safe_open(str(path), framework="pt") as file:
                    names = list(file.keys())
            except (SafetensorError, OSError) as error:
                raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {error}") from None
            prefix = wrapper_prefix(names, target=model_state)
            if not prefix:
                from safetensors.torch import load_model

                load_model(model, path)  # knows which tensors save_model stored once for tied weights
                return None
        weights = read_model_weights(path)
        prefix = wrapper_prefix(list(weights), target=model_state)
        _load_strict(model, model_state, strip_prefix(weights, prefix))
    except RuntimeError as error:
        raise CheckpointError(f"the weights in {str(path)!r} do not fit the model: {error}") from None
    return describe_stripped(prefix, repr(str(path))) if prefix else None


def _load_strict(model: torch.nn.Module, model_state: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]) -> None:
    """``load_state_dict(strict=True)``, with a key the file lacks filled from a loaded key it is tied to
    (the same storage in the model: ``safetensors.torch.save_model`` stores tied weights once)."""
    loaded = {model_state[name].data_ptr(): name for name in weights if name in model_state and model_state[name].numel()}
    for name, tensor in model_state.items():
        if name not in weights and tensor.numel() and tensor.data_ptr() in loaded:
            weights = {**weights, name: weights[loaded[tensor.data_ptr()]]}
    model.load_state_dict(weights)  # strict: torch's message names every missing, unexpected or misshapen key
