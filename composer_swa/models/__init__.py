"""Built-in models, small enough to train on a CPU."""

from composer_swa.models.char_gpt import CharGPT
from composer_swa.models.cnn1d import MNIST1DConvNet
from composer_swa.models.fashion_cnn import FashionCNN
from composer_swa.models.mlp import MLP

__all__ = ["MLP", "CharGPT", "FashionCNN", "MNIST1DConvNet"]
