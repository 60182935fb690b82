"""Weight averaging during training: the one kernel every running average uses, model averages, and the batch-norm pass.

What runs after training (checkpoints merged from files, soups, recipes) is :mod:`composer_swa.merging`;
it depends on this package, never the other way round.

The names below load on first use, so that importing the package costs nothing until one is used.

Example:
    >>> import torch
    >>> from composer_swa.averaging import ModelAverage
    >>> model = torch.nn.Linear(2, 1)
    >>> average = ModelAverage(model)
    >>> average.copy_from_model()
    >>> average.numel
    3
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from composer_swa._lazy import lazy_attributes

if TYPE_CHECKING:
    from composer_swa.averaging.bayesian import Prediction, bayesian_predict, predict
    from composer_swa.averaging.bn import recompute_batch_norm
    from composer_swa.averaging.flat_layout import flat_parameters
    from composer_swa.averaging.kernel import FlatAverage
    from composer_swa.averaging.model_average import ModelAverage, compute_ema
    from composer_swa.averaging.swag_posterior import SWAGPosterior

__all__ = [
    "FlatAverage",
    "ModelAverage",
    "Prediction",
    "SWAGPosterior",
    "bayesian_predict",
    "compute_ema",
    "flat_parameters",
    "predict",
    "recompute_batch_norm",
]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "FlatAverage": f"{__name__}.kernel",
        "flat_parameters": f"{__name__}.flat_layout",
        "ModelAverage": f"{__name__}.model_average",
        "compute_ema": f"{__name__}.model_average",
        "recompute_batch_norm": f"{__name__}.bn",
        **dict.fromkeys(("Prediction", "bayesian_predict", "predict"), f"{__name__}.bayesian"),
        "SWAGPosterior": f"{__name__}.swag_posterior",
    },
)
