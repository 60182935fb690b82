"""The averaging kernel: an fp32 copy of many tensors in one flat buffer, moved toward live values.

Every weight average in composer_swa (SWA's equal-weight mean, EMA, checkpoint averaging) is the
same in-place interpolation ``average += weight * (source - average)``; only the weight differs:
``1 / (n + 1)`` for the running mean of SWA, ``1 - smoothing`` for EMA. This module does that one
update as fast as memory allows:

- Each group of tensors (same source device and dtype) is stored in one contiguous fp32 buffer;
  the per-tensor views alias it, so copying in and out is one multi-tensor op.
- Sources already in fp32 on the buffer's device are interpolated directly with
  ``torch._foreach_lerp_``: no copy, and one kernel launch per group on CUDA.
- Other sources (bf16/fp16 weights, or an average offloaded to the CPU) are first copied into an
  fp32 staging buffer with one non-blocking multi-tensor copy, then interpolated as one flat tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["FlatAverage", "flat_views"]


def flat_views(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Views of ``flat`` shaped like each of ``like``, laid end to end."""
    views, offset = [], 0
    for tensor in like:
        views.append(flat[offset : offset + tensor.numel()].view(tensor.shape))
        offset += tensor.numel()
    return views


@dataclass
class _Group:
    sources: list[torch.Tensor]
    flat: torch.Tensor
    views: list[torch.Tensor]
    staging: torch.Tensor | None
    staging_views: list[torch.Tensor] | None

    @property
    def direct(self) -> bool:
        return self.staging is None


class FlatAverage:
    """An fp32 average of ``sources`` kept in flat buffers on ``device``.

    The sources are held by reference (for a model: its ``Parameter`` objects), so the average always
    reads the current values, even after ``param.data`` is reassigned. Integer and bool tensors have
    no meaningful average: they are not accepted here (see :class:`ModelAverage`).

    Args:
        sources: Floating-point tensors to average.
        device: Where the average lives; defaults to each source's device. ``"cpu"`` offloads it.

    Example:
        >>> weights = [torch.ones(2), torch.zeros(3)]
        >>> average = FlatAverage(weights)
        >>> average.copy_from_sources()
        >>> weights[0].fill_(3.0)  # doctest: +ELLIPSIS
        tensor(...)
        >>> average.interpolate(0.5)  # the mean of 1 and 3
        >>> average.views()[0]
        tensor([2., 2.])
    """

    def __init__(self, sources: Sequence[torch.Tensor], device: torch.device | str | None = None) -> None:
        target = torch.device(device) if device is not None else None
        by_key: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for tensor in sources:
            if not tensor.is_floating_point():
                raise TypeError(f"FlatAverage averages floating-point tensors only, got dtype {tensor.dtype}")
            by_key.setdefault((tensor.device, tensor.dtype), []).append(tensor)
        self._order = list(sources)
        self._groups = [self._make_group(group, target or source_device) for (source_device, _), group in by_key.items()]

    @staticmethod
    def _make_group(sources: list[torch.Tensor], device: torch.device) -> _Group:
        numel = sum(tensor.numel() for tensor in sources)
        flat = torch.zeros(numel, dtype=torch.float32, device=device)
        staging = staging_views = None
        if sources[0].dtype != torch.float32 or sources[0].device != device:
            # Pinned host memory lets the device-to-host copy run without blocking per tensor.
            pin = device.type == "cpu" and sources[0].device.type == "cuda"
            staging = torch.empty(numel, dtype=torch.float32, device=device, pin_memory=pin)
            staging_views = flat_views(staging, sources)
        return _Group(list(sources), flat, flat_views(flat, sources), staging, staging_views)

    @property
    def numel(self) -> int:
        return sum(group.flat.numel() for group in self._groups)

    def views(self) -> list[torch.Tensor]:
        """The average of each source, in the order the sources were given (views, not copies)."""
        by_id = {id(source): view for group in self._groups for source, view in zip(group.sources, group.views)}
        return [by_id[id(source)] for source in self._order]

    @torch.no_grad()
    def copy_from_sources(self) -> None:
        """Sets the average to the current source values (the first snapshot)."""
        for group in self._groups:
            torch._foreach_copy_(group.views, group.sources)

    @torch.no_grad()
    def interpolate(self, weight: float) -> None:
        """``average += weight * (source - average)`` for every tensor, in fp32."""
        for group in self._groups:
            if group.direct:
                torch._foreach_lerp_(group.views, group.sources, weight)
                continue
            assert group.staging is not None and group.staging_views is not None
            torch._foreach_copy_(group.staging_views, group.sources, non_blocking=True)
            if group.sources[0].device.type == "cuda" and group.flat.device.type == "cpu":
                torch.cuda.current_stream(group.sources[0].device).synchronize()
            group.flat.lerp_(group.staging, weight)

    @torch.no_grad()
    def copy_to_sources(self) -> None:
        """Writes the average into the source tensors (cast to their dtype)."""
        for group in self._groups:
            torch._foreach_copy_(group.sources, group.views)
