"""A multi-layer perceptron for vector (or flattened) inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["MLP"]


class MLP(torch.nn.Module):
    """``Linear → [BatchNorm] → ReLU → [Dropout]`` per hidden layer, then a linear classifier.

    Inputs of any shape ``(N, ...)`` are flattened, so it also takes MNIST-1D's ``(N, 1, 40)``.

    Args:
        in_features: Input size after flattening.
        num_classes: Output classes.
        hidden: Widths of the hidden layers.
        batch_norm: Add batch norm after each hidden linear layer.
        dropout: Dropout probability after each hidden activation.

    Example:
        >>> MLP(in_features=40, num_classes=10)(torch.zeros(8, 1, 40)).shape
        torch.Size([8, 10])
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = (128, 128),
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        layers: list[torch.nn.Module] = [torch.nn.Flatten()]
        width = in_features
        for size in hidden:
            layers.append(torch.nn.Linear(width, size))
            if batch_norm:
                layers.append(torch.nn.BatchNorm1d(size))
            layers.append(torch.nn.ReLU())
            if dropout:
                layers.append(torch.nn.Dropout(dropout))
            width = size
        layers.append(torch.nn.Linear(width, num_classes))
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)
