"""Algorithms as functions, for a training loop of your own (Composer's ``composer.functional``).

Example:
    >>> import copy
    >>> import torch
    >>> import composer_swa.functional as cf
    >>> model = torch.nn.Linear(2, 1)
    >>> ema_model = copy.deepcopy(model)
    >>> cf.compute_ema(model, ema_model, smoothing=0.99)
"""

from __future__ import annotations

from composer_swa.algorithms.gradient_clipping import apply_gradient_clipping
from composer_swa.averaging.model_average import compute_ema

__all__ = ["apply_gradient_clipping", "compute_ema"]
