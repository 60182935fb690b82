"""Numerical precision, by Composer's names: ``fp32``, or ``amp_bf16`` / ``amp_fp16`` autocast (fp16 with loss scaling).

``bf16`` and ``fp16`` are our older spellings of the same two; ``state.precision`` always holds Composer's name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

__all__: list[str] = []

PRECISIONS = ("fp32", "amp_fp16", "amp_bf16")
ALIASES = {"bf16": "amp_bf16", "fp16": "amp_fp16"}


def check_precision(precision: str | None, device: torch.device) -> str:
    """Composer's name for ``precision``; ``None`` means Composer's default: ``amp_fp16`` on CUDA, else ``fp32``.

    Example:
        >>> check_precision("bf16", torch.device("cpu")), check_precision(None, torch.device("cpu"))
        ('amp_bf16', 'fp32')
    """
    if precision is None:
        return "amp_fp16" if device.type == "cuda" else "fp32"
    name = ALIASES.get(precision, precision) if isinstance(precision, str) else precision
    if name == "amp_fp8":
        raise ValueError("precision='amp_fp8' needs NVIDIA Transformer Engine, which composer_swa does not use; use 'amp_bf16'")
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} (or 'bf16', 'fp16'), got {precision!r}")
    if name == "amp_fp16" and device.type == "cpu":
        raise ValueError(f"precision={precision!r} needs a CUDA device (GradScaler); use 'amp_bf16' on the CPU")
    return name


_NO_AUTOCAST = contextlib.nullcontext()  # reusable, so an fp32 step builds no context object


def autocast_context(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A factory of the context each forward pass runs in. Weights stay fp32; autocast casts the math."""
    if precision == "fp32":
        return lambda: _NO_AUTOCAST
    dtype = torch.bfloat16 if precision == "amp_bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    return torch.amp.GradScaler(device.type) if precision == "amp_fp16" else None
