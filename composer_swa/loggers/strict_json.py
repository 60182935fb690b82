"""Strict JSON: what every JSON parser reads, so non-finite numbers become ``null``.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which ``JSON.parse``, ``jq`` and most
other parsers reject. Our metrics files, ``summary.json`` and ``export.json`` go through here instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__: list[str] = []


def _finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (at any depth) replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def strict_dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that writes NaN and ±inf as ``null`` and refuses to write anything non-standard.

    pandas reads ``null`` back as NaN. Keyword arguments go to ``json.dumps`` (``indent``, ``default``).

    Example:
        >>> strict_dumps({"loss": float("nan"), "lr": 0.1, "history": [1.0, float("inf")]})
        '{"loss": null, "lr": 0.1, "history": [1.0, null]}'
    """
    return json.dumps(_finite_or_none(value), allow_nan=False, **kwargs)
