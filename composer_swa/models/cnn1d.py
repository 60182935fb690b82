"""The 1-D convolutional network of the MNIST-1D paper (Greydanus 2020, "ConvBase")."""

from __future__ import annotations

import torch

__all__ = ["MNIST1DConvNet"]


class MNIST1DConvNet(torch.nn.Module):
    """Three strided 1-D convolutions and a linear classifier: about 5k parameters, ~94% on MNIST-1D.

    Args:
        channels: Feature maps per convolution (25 in the paper).
        length: Signal length (40 for the default MNIST-1D).
        classes: Output classes.
        batch_norm: Add batch norm after each convolution (not in the paper; exercises SWA's statistics pass).

    Example:
        >>> MNIST1DConvNet()(torch.zeros(8, 1, 40)).shape
        torch.Size([8, 10])
    """

    def __init__(self, channels: int = 25, length: int = 40, classes: int = 10, batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        in_channels = 1
        for kernel, stride, padding in ((5, 2, 1), (3, 2, 1), (3, 2, 1)):
            layers.append(torch.nn.Conv1d(in_channels, channels, kernel, stride, padding))
            if batch_norm:
                layers.append(torch.nn.BatchNorm1d(channels))
            layers.append(torch.nn.ReLU())
            in_channels = channels
        self.features = torch.nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 1, length)).numel()
        self.classifier = torch.nn.Linear(flat, classes)

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(signals).flatten(1))
