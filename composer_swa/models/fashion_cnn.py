"""A small convolutional network with batch norm for 28x28 grey images (Fashion-MNIST)."""

from __future__ import annotations

import itertools

import torch

__all__ = ["FashionCNN"]


class FashionCNN(torch.nn.Module):
    """Three 3x3 convolutions with batch norm, ReLU and 2x2 max-pooling, then a linear classifier.

    ``channels=16`` has about 25k parameters and, single-threaded on a laptop-class CPU, takes a few
    seconds per epoch of 10,000 images: small enough for SWA's studies, and its batch norm is what
    SWA's statistics pass is for.

    Args:
        channels: Feature maps of the first convolution; the second and third have 2x and 4x as many.
        num_classes: Output classes (filled in from a ``fashion_mnist`` dataset by the config builder).
        size: Height and width of the (square) input images.

    Example:
        >>> FashionCNN()(torch.zeros(8, 1, 28, 28)).shape
        torch.Size([8, 10])
    """

    def __init__(self, channels: int = 16, num_classes: int = 10, size: int = 28) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an int >= 1, got {channels!r}")
        layers: list[torch.nn.Module] = []
        widths = (1, channels, 2 * channels, 4 * channels)
        for in_channels, out_channels in itertools.pairwise(widths):
            # No convolution bias: the batch norm that follows has its own shift.
            layers += [
                torch.nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(out_channels),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2),
            ]
            size //= 2
        self.features = torch.nn.Sequential(*layers)
        self.classifier = torch.nn.Linear(widths[-1] * size * size, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images).flatten(1))
