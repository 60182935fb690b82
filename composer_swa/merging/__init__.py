"""Merging after training: checkpoints streamed from files into one, by a registered method.

The offline half of composer_swa (what runs during training is :mod:`composer_swa.averaging`):

- ``sources.py`` and :mod:`composer_swa.safetensors_format` read inputs slice by slice (the latter,
  shared with training's snapshot files, and ``numpy_average.py`` without torch); ``inputs.py`` opens
  them together, ``compatibility.py`` compares them, ``order.py`` puts them oldest first.
- ``weighted_sum.py`` is the one arithmetic of every merge (and says why it is not the training
  kernel); ``merge.py`` streams it into ``writer.py``'s safetensors, ``output.py`` guards the output.
- ``methods/`` is the registry of merge methods: those that weigh the inputs (``recipes.py``:
  schedules, layer-wise weights; ``weights_files.py``; ``soups.py``: greedy, SoCE) and those that
  merge each tensor (mergekit's, Fisher, RegMean), which ``tensor_merge.py`` streams slice by slice
  after ``plan.py`` maps inputs' tensors (and ``settings.py`` their parameters) to the output's;
  ``mergekit_recipe.py`` reads mergekit's YAML; ``finish.py`` refreshes batch norm in the output.

The names below load on first use, so that ``swa-average`` reads its recipes without importing torch first.

Example:
    >>> from composer_swa.merging import last_k_weights
    >>> last_k_weights(4, 2)
    [0.0, 0.0, 0.5, 0.5]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from composer_swa._lazy import lazy_attributes

if TYPE_CHECKING:
    from composer_swa.merging.compatibility import IncompatibleCheckpoints, check_compatibility
    from composer_swa.merging.merge import average_checkpoints, cosine_similarities
    from composer_swa.merging.methods import METHODS, MergeInputs, MergeOptions, Weighting, register_method
    from composer_swa.merging.recipes import decay_emulating_weights, last_k_weights, layerwise_weights, normalize_weights
    from composer_swa.merging.soups import greedy_soup, soce, uniform_soup, weighted_soup
    from composer_swa.merging.tensor_merge import merge_tensors
    from composer_swa.safetensors_format import SourceError

__all__ = [
    "METHODS",
    "IncompatibleCheckpoints",
    "MergeInputs",
    "MergeOptions",
    "SourceError",
    "Weighting",
    "average_checkpoints",
    "check_compatibility",
    "cosine_similarities",
    "decay_emulating_weights",
    "greedy_soup",
    "last_k_weights",
    "layerwise_weights",
    "merge_tensors",
    "normalize_weights",
    "register_method",
    "soce",
    "uniform_soup",
    "weighted_soup",
]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "METHODS": f"{__name__}.methods",
        "IncompatibleCheckpoints": f"{__name__}.compatibility",
        "MergeInputs": f"{__name__}.methods",
        "MergeOptions": f"{__name__}.methods",
        "SourceError": "composer_swa.safetensors_format",
        "average_checkpoints": f"{__name__}.merge",
        "check_compatibility": f"{__name__}.compatibility",
        "cosine_similarities": f"{__name__}.merge",
        "decay_emulating_weights": f"{__name__}.recipes",
        "greedy_soup": f"{__name__}.soups",
        "last_k_weights": f"{__name__}.recipes",
        "layerwise_weights": f"{__name__}.recipes",
        "merge_tensors": f"{__name__}.tensor_merge",
        "normalize_weights": f"{__name__}.recipes",
        "register_method": f"{__name__}.methods",
        "soce": f"{__name__}.soups",
        "uniform_soup": f"{__name__}.soups",
        "weighted_soup": f"{__name__}.soups",
        "Weighting": f"{__name__}.methods",
    },
)
