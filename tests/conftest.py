"""Small deterministic data and models shared by the tests (everything runs on a CPU in seconds)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset


def make_loader(samples: int = 64, batch_size: int = 16, features: int = 4, classes: int = 3, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, features, generator=generator)
    targets = torch.randint(0, classes, (samples,), generator=generator)
    return DataLoader(TensorDataset(inputs, targets), batch_size=batch_size)


class DictDataset(torch.utils.data.Dataset):
    """Yields ``{"x": ..., "labels": ...}`` like a Hugging Face dataset."""

    def __init__(self, samples: int = 48, features: int = 4) -> None:
        generator = torch.Generator().manual_seed(1)
        self.x = torch.randn(samples, features, generator=generator)
        self.labels = torch.randint(0, 2, (samples,), generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.labels[index]}


class DictModel(torch.nn.Module):
    """Returns ``{"logits", "loss"}`` like a Hugging Face model given labels."""

    def __init__(self, features: int = 4) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(features, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.linear(x)
        return {"logits": logits, "loss": torch.nn.functional.cross_entropy(logits, labels)}


@pytest.fixture
def loader() -> DataLoader:
    return make_loader()


def mlp(features: int = 4, classes: int = 3, batch_norm: bool = False, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Linear(features, 8)]
    if batch_norm:
        layers.append(torch.nn.BatchNorm1d(8))
    layers += [torch.nn.ReLU(), torch.nn.Linear(8, classes)]
    return torch.nn.Sequential(*layers)
