"""Checks of the algorithms' constructor arguments: a value of the wrong type or range is a ValueError
naming the argument, showing the value and saying what is allowed (never a raw TypeError from a comparison)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__: list[str] = []


def check_flag(value: object, argument: str) -> bool:
    """``value`` if it is a bool; a truthy string such as ``"no"`` would otherwise switch an option on.

    Example:
        >>> check_flag(True, "offload")
        True
    """
    if not isinstance(value, bool):
        raise ValueError(f"{argument} must be True or False, got {value!r}")
    return value


def is_number(value: object) -> bool:
    """Whether ``value`` is a finite int or float (bools and numeric strings are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_positive(value: object, argument: str, allowed: str = "a finite number > 0") -> float:
    """``value`` as a float if it is a finite number > 0; ``allowed`` completes the error message.

    Example:
        >>> check_positive(2, "warmup_power")
        2.0
    """
    if not is_number(value) or not value > 0:  # type: ignore[operator]
        raise ValueError(f"{argument} must be {allowed}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_swa_lr(value: object) -> float | list[float] | None:
    """SWA's ``swa_lr``: ``None``, a number > 0, or a non-empty list of them, one per param group (as torch's SWALR).

    Example:
        >>> check_swa_lr(0.1), check_swa_lr((0.1, 0.2)), check_swa_lr(None)
        (0.1, [0.1, 0.2], None)
    """
    allowed = "> 0: a finite number, a list of them (one per param group), or None to hold the LR in effect at swa_start"
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not value or not all(is_number(lr) and lr > 0 for lr in value):
            raise ValueError(f"swa_lr must be {allowed}, got {value!r}")
        return [float(lr) for lr in value]
    return check_positive(value, "swa_lr", allowed)


def check_cyclic_lr(value: object) -> tuple[float, float] | None:
    """SWA's ``cyclic_lr``: ``None`` or ``(high, low)`` with ``high >= low > 0``.

    Example:
        >>> check_cyclic_lr([0.1, 0.01])
        (0.1, 0.01)
    """
    if value is None:
        return None
    if (
        not isinstance(value, Sequence)
        or isinstance(value, (str, bytes))
        or len(value) != 2
        or not all(is_number(lr) for lr in value)
        or not value[0] >= value[1] > 0
    ):
        raise ValueError(f"cyclic_lr must be (high, low) with high >= low > 0, or None, got {value!r}")
    return float(value[0]), float(value[1])
