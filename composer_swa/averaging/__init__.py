"""Weight averaging: the one kernel every average uses, model averages, and batch-norm statistics passes.

The names below load on first use, so that ``swa-average`` reads its recipes without importing torch first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from composer_swa._lazy import lazy_attributes

if TYPE_CHECKING:
    from composer_swa.averaging.bn import batch_norm_layers, recompute_batch_norm
    from composer_swa.averaging.kernel import FlatAverage
    from composer_swa.averaging.model_average import ModelAverage, named_state_tensors

__all__ = [
    "FlatAverage",
    "ModelAverage",
    "batch_norm_layers",
    "named_state_tensors",
    "recompute_batch_norm",
]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "FlatAverage": f"{__name__}.kernel",
        "ModelAverage": f"{__name__}.model_average",
        "batch_norm_layers": f"{__name__}.bn",
        "named_state_tensors": f"{__name__}.model_average",
        "recompute_batch_norm": f"{__name__}.bn",
    },
)
