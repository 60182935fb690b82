"""Numerical precision: fp32, or bf16/fp16 autocast (fp16 with loss scaling)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

__all__: list[str] = []

PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str | None, device: torch.device) -> str:
    """Validates ``precision``; ``None`` means fp32."""
    if precision is None:
        return "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision='fp16' needs a CUDA device (GradScaler); use 'bf16' on the CPU")
    return precision


_NO_AUTOCAST = contextlib.nullcontext()  # reusable, so an fp32 step builds no context object


def autocast_context(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A factory of the context each forward pass runs in. Weights stay fp32; autocast casts the math."""
    if precision == "fp32":
        return lambda: _NO_AUTOCAST
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
