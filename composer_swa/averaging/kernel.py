"""The averaging kernel: an fp32 copy of many tensors in one flat buffer, moved toward live values.

Every average kept during training (SWA's equal-weight mean, EMA, LAWA's window) is the same
in-place interpolation ``average += weight * (source - average)``; only the weight differs:
``1 / (n + 1)`` for the running mean of SWA, ``1 - smoothing`` for EMA (SWAG's second moment is the same
update toward the squared sources, :meth:`FlatAverage.interpolate_squares`). This module does that one
update as fast as memory allows (merges of saved checkpoints are a weighted sum instead; see
:mod:`composer_swa.merging.weighted_sum` for why they do not interpolate):

- Each group of tensors (same source device and dtype) is stored in one contiguous fp32 buffer;
  the per-tensor views alias it, so copying in and out is one multi-tensor op.
- Sources already in fp32 on the buffer's device are interpolated directly with
  ``torch._foreach_lerp_``: no copy, and one kernel launch per group on CUDA.
- Other sources (bf16/fp16 weights, or an average offloaded to the CPU) are first copied into an
  fp32 staging buffer with one non-blocking multi-tensor copy, then interpolated as one flat tensor.
- Sources that are consecutive views of one buffer (a model laid out by
  :func:`~composer_swa.averaging.flat_parameters`) are read as that one flat tensor: one ``lerp_``
  (or one copy) per group instead of one per tensor, as long as every source still points there.
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


def _contiguous_run(sources: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[int]] | None:
    """The one flat tensor ``sources`` are consecutive views of (see ``flat_parameters``), with their addresses.

    ``None`` when they are not laid end to end in one storage, in order.
    """
    first = sources[0].detach()
    position = first.storage_offset()
    for tensor in sources:
        if not tensor.is_contiguous() or tensor.storage_offset() != position:
            return None
        if tensor.untyped_storage().data_ptr() != first.untyped_storage().data_ptr():
            return None
        position += tensor.numel()
    flat = first.as_strided((position - first.storage_offset(),), (1,), first.storage_offset())
    return flat, [tensor.data_ptr() for tensor in sources]


@dataclass
class _Group:
    sources: list[torch.Tensor]
    flat: torch.Tensor
    views: list[torch.Tensor]
    direct: bool  # fp32 sources on the average's device: interpolate in place, no staging
    staging: torch.Tensor | None = None
    staging_views: list[torch.Tensor] | None = None
    #: The sources as one flat tensor, when they are views of one buffer, and their addresses then.
    source_run: tuple[torch.Tensor, list[int]] | None = None

    def flat_sources(self) -> torch.Tensor | None:
        """The sources as one flat tensor while they still are views of one buffer (``param.data = x`` undoes it)."""
        if self.source_run is None:
            return None
        flat, addresses = self.source_run
        return flat if list(map(torch.Tensor.data_ptr, self.sources)) == addresses else None

    def staged_sources(self) -> torch.Tensor:
        """The sources as one fp32 tensor on the average's device (allocated on first use: a
        snapshot that is only ever copied, like LAWA's, never pays for it)."""
        if self.staging is None:
            # Pinned host memory lets the device-to-host copy run without blocking per tensor.
            pin = self.flat.device.type == "cpu" and self.sources[0].device.type == "cuda"
            self.staging = torch.empty(self.flat.numel(), dtype=torch.float32, device=self.flat.device, pin_memory=pin)
            self.staging_views = flat_views(self.staging, self.sources)
        assert self.staging_views is not None
        if (flat := self.flat_sources()) is not None:
            self.staging.copy_(flat, non_blocking=True)
        else:
            torch._foreach_copy_(self.staging_views, self.sources, non_blocking=True)
        if self.sources[0].device.type == "cuda" and self.flat.device.type == "cpu":
            torch.cuda.current_stream(self.sources[0].device).synchronize()
        return self.staging


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
        direct = sources[0].dtype == torch.float32 and sources[0].device == device
        return _Group(list(sources), flat, flat_views(flat, sources), direct, source_run=_contiguous_run(sources))

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
                if (flat := group.flat_sources()) is not None:
                    group.flat.lerp_(flat, weight)  # one op, whatever the number of tensors
                else:
                    torch._foreach_lerp_(group.views, group.sources, weight)
            else:
                group.flat.lerp_(group.staged_sources(), weight)

    @torch.no_grad()
    def interpolate_squares(self, weight: float) -> None:
        """``average += weight * (source² - average)`` for every tensor, in fp32: a running second moment (SWAG's).

        Example:
            >>> weights = [torch.tensor([1.0, -2.0])]
            >>> second_moment = FlatAverage(weights)
            >>> second_moment.interpolate_squares(1.0)
            >>> weights[0].mul_(3.0)  # doctest: +ELLIPSIS
            tensor(...)
            >>> second_moment.interpolate_squares(0.5)  # the mean of 1 and 9, of 4 and 36
            >>> second_moment.views()[0]
            tensor([ 5., 20.])
        """
        for group in self._groups:
            if group.direct:
                # (1 - w)·avg + w·source·source without a temporary for the squares
                torch._foreach_mul_(group.views, 1.0 - weight)
                torch._foreach_addcmul_(group.views, group.sources, group.sources, weight)
            else:
                staged = group.staged_sources()
                group.flat.lerp_(staged.square_(), weight)

    def _paired_groups(self, other: FlatAverage) -> list[tuple[_Group, _Group]]:
        layout = [(g.flat.numel(), g.flat.device) for g in self._groups]
        if layout != [(g.flat.numel(), g.flat.device) for g in other._groups]:
            raise ValueError("the two averages were built over different tensors or devices; they cannot be combined")
        return list(zip(self._groups, other._groups))

    @torch.no_grad()
    def copy_from_average(self, other: FlatAverage) -> None:
        """Sets this average to ``other``, an average built over the same sources."""
        for group, other_group in self._paired_groups(other):
            group.flat.copy_(other_group.flat)

    @torch.no_grad()
    def interpolate_toward_average(self, other: FlatAverage, weight: float) -> None:
        """``average += weight * (other - average)``: combines averages (LAWA's window mean)."""
        for group, other_group in self._paired_groups(other):
            group.flat.lerp_(other_group.flat, weight)

    @torch.no_grad()
    def copy_to_sources(self) -> None:
        """Writes the average into the source tensors (cast to their dtype)."""
        for group in self._groups:
            torch._foreach_copy_(group.sources, group.views)
