"""Weight averaging: the one kernel every average uses, model averages, and batch-norm statistics passes.

The names below load on first use, so that ``swa-average`` reads its recipes without importing torch first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from composer_swa.averaging.bn import batch_norm_layers, recompute_batch_norm
    from composer_swa.averaging.kernel import FlatAverage
    from composer_swa.averaging.model_average import ModelAverage, named_state_tensors, strip_wrapper_prefixes

__all__ = [
    "FlatAverage",
    "ModelAverage",
    "batch_norm_layers",
    "named_state_tensors",
    "recompute_batch_norm",
    "strip_wrapper_prefixes",
]

_WHERE = {
    "FlatAverage": "kernel",
    "ModelAverage": "model_average",
    "batch_norm_layers": "bn",
    "named_state_tensors": "model_average",
    "recompute_batch_norm": "bn",
    "strip_wrapper_prefixes": "model_average",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        return _submodule(name)
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def _submodule(name: str) -> Any:
    """``package.submodule`` without importing it first, as when the package imported everything eagerly."""
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
