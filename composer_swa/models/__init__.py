"""Models: Composer's model protocol and its wrappers, and built-in models small enough to train on a CPU.

``ComposerClassifier`` and ``HuggingFaceModel`` load on first use (they import torchmetrics, and
transformers), so importing a built-in model stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from composer_swa._lazy import lazy_attributes
from composer_swa.models.base import ComposerModel
from composer_swa.models.char_gpt import CharGPT
from composer_swa.models.cnn1d import MNIST1DConvNet
from composer_swa.models.fashion_cnn import FashionCNN
from composer_swa.models.mlp import MLP

if TYPE_CHECKING:
    from composer_swa.models.classifier import ComposerClassifier
    from composer_swa.models.huggingface import HuggingFaceModel

__all__ = ["MLP", "CharGPT", "ComposerClassifier", "ComposerModel", "FashionCNN", "HuggingFaceModel", "MNIST1DConvNet"]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {"ComposerClassifier": "composer_swa.models.classifier", "HuggingFaceModel": "composer_swa.models.huggingface"},
)
