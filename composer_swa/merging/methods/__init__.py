"""Merge methods by name (:data:`METHODS`): those that weigh the inputs, and those that merge each tensor.

``registry.py`` defines a method and the registry; ``weighing.py`` registers the methods that weigh
the inputs (uniform, linear, layer-wise, LAWA, decay, soups, post-hoc EMA); ``catalog.py`` the
methods that merge each tensor (mergekit's, and the data-aware ``fisher`` and ``regmean``), whose
kernels (``interpolation.py``, ``task_vectors.py``, ``others.py``, ``data_aware.py``, built on
``kernel.py``) import torch when a merge runs. Importing this package does not import torch.

Example:
    >>> inputs = MergeInputs(("a.safetensors", "b.safetensors", "c.safetensors"))
    >>> METHODS["lawa"].weigh(MergeOptions(last_k=2), inputs).weights
    [0.0, 0.5, 0.5]
    >>> [name for name, method in METHODS.items() if method.weigh is not None]
    ['uniform', 'linear', 'layerwise', 'lawa', 'decay', 'greedy', 'soce', 'posthoc']
    >>> METHODS["ties"].base, [p.name for p in METHODS["ties"].settings][-2:]
    ('required', ['weight', 'density'])
"""

from __future__ import annotations

from composer_swa.merging.methods import catalog, weighing  # noqa: F401  (they register the methods)
from composer_swa.merging.methods.registry import (
    METHODS,
    MergeInputs,
    MergeMethod,
    MergeOptions,
    OptionError,
    Weighting,
    add_method,
    register_method,
)

__all__ = ["METHODS", "MergeInputs", "MergeMethod", "MergeOptions", "OptionError", "Weighting", "add_method", "register_method"]
