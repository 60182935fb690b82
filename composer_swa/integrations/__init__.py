"""composer_swa's algorithms in loops that are not our Trainer: a plain loop, Hugging Face, Lightning.

:class:`AlgorithmRunner` needs nothing beyond the core. The framework callbacks import their
framework on first use, so the core never depends on it:

- ``HuggingFaceCallback``: a ``transformers.TrainerCallback`` (``pip install 'composer_swa[hf]'``);
- ``LightningCallback``: a ``lightning.pytorch.Callback`` (``pip install 'composer_swa[lightning]'``).

Example:
    >>> from composer_swa.integrations import AlgorithmRunner
"""

from __future__ import annotations

import importlib
from typing import Any

from composer_swa.integrations.runner import AlgorithmRunner

__all__ = ["AlgorithmRunner", "HuggingFaceCallback", "LightningCallback"]

_LAZY = {
    "HuggingFaceCallback": "composer_swa.integrations.huggingface",
    "LightningCallback": "composer_swa.integrations.lightning",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
