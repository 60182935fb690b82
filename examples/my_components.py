"""Your own components for a YAML config, named by import path (see custom_component.yaml).

swa-train puts the current folder and the config's folder on the import path, so
``name: my_components:WideMLP`` finds this file next to the config.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from composer_swa import Algorithm, Event, State
from composer_swa.loggers import Logger


class WideMLP(torch.nn.Module):
    """One wide hidden layer; ``in_features`` and ``num_classes`` are filled in from the dataset."""

    def __init__(self, in_features: int, num_classes: int, width: int = 256) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(in_features, width), torch.nn.ReLU(), torch.nn.Linear(width, num_classes)
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)


class GradientClipping(Algorithm):
    """Clips the gradient norm after each backward pass: a minimal algorithm of your own."""

    events: ClassVar[frozenset[Event]] = frozenset({Event.AFTER_BACKWARD})

    def __init__(self, max_norm: float = 1.0) -> None:
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
        self.max_norm = max_norm

    def match(self, event: Event, state: State) -> bool:
        return True

    def apply(self, event: Event, state: State, logger: Logger) -> None:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), self.max_norm)
