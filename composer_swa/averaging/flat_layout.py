"""An opt-in layout: a model's floating tensors as views of one flat buffer, so an average update is one op.

On a CPU, a multi-tensor op (``_foreach_lerp_``) is a loop costing one or two microseconds per tensor,
and a tensor under PyTorch's grain size (32768 elements) never uses a second thread. A model of many
small tensors therefore averages far slower than its size says. Once its parameters and floating
buffers are consecutive views of one buffer, the averaging kernel
(:class:`~composer_swa.averaging.FlatAverage`) reads them as that buffer: one ``lerp_`` per update.

What it changes for saving: the tensors now share one storage.

- ``torch.save(model.state_dict())`` still writes each byte once; but ``torch.save`` of a single
  tensor writes the whole buffer.
- ``safetensors.torch.save_model`` (and Hugging Face's ``save_pretrained``) refuse tensors that share
  storage without covering it; give them copies: ``{k: v.clone() for k, v in model.state_dict().items()}``
  with ``safetensors.torch.save_file``. composer_swa's own exports (``export_weights``, checkpoints)
  already write each tensor on its own.
- ``param.data = tensor`` (or a module that replaces a buffer) takes that tensor out of the buffer;
  the kernel notices and falls back to its per-tensor path, so averages stay right, only slower.
"""

from __future__ import annotations

import torch

from composer_swa.averaging.kernel import flat_views
from composer_swa.averaging.model_average import named_state_tensors
from composer_swa.distributed.sharded import is_dtensor

__all__ = ["flat_parameters"]


@torch.no_grad()
def flat_parameters(model: torch.nn.Module) -> list[torch.Tensor]:
    """Re-lays ``model``'s floating parameters and buffers as consecutive views of one buffer per device and dtype.

    The ``Parameter`` objects stay the same (optimizers and averages built before or after keep
    working); only their storage moves. Values are unchanged. Call it before creating the optimizer
    if it keeps per-parameter state that should be laid out alike (it need not be). Sharded (FSDP2)
    parameters are left alone. See the module's notes on saving.

    Args:
        model: The model, changed in place.

    Returns:
        The flat buffers, one per (device, dtype) group, in order of first appearance.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        >>> [buffer.numel() for buffer in flat_parameters(model)]  # 12 + 4 + 4 + 4 + 4 + 4
        [32]
        >>> all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
        True
        >>> model[0].weight.untyped_storage().data_ptr() == model[1].running_var.untyped_storage().data_ptr()
        True
    """
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for _, tensor in named_state_tensors(model):
        if tensor.is_floating_point() and not is_dtensor(tensor):
            groups.setdefault((tensor.device, tensor.dtype), []).append(tensor)
    buffers = []
    for tensors in groups.values():
        flat = torch.cat([tensor.detach().reshape(-1) for tensor in tensors])
        for tensor, view in zip(tensors, flat_views(flat, tensors)):
            tensor.data = view
        buffers.append(flat)
    return buffers
