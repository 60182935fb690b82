"""Built-in models, small enough to train on a CPU."""

from composer_swa.models.cnn1d import MNIST1DConvNet

__all__ = ["MNIST1DConvNet"]
