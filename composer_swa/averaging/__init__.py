"""Weight averaging: the one kernel every average uses, model averages, and batch-norm statistics passes."""

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
