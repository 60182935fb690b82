"""A synthetic classification task: Gaussian clusters, one or more per class, in any dimension."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

__all__ = ["synthetic_classification"]


def synthetic_classification(
    samples: int = 2048,
    features: int = 16,
    classes: int = 4,
    clusters_per_class: int = 2,
    noise: float = 1.0,
    seed: int = 0,
) -> TensorDataset:
    """``(features,)`` inputs and integer labels; cluster centres come from ``seed``, so a train and
    an eval split built with the same ``seed`` and different sizes share one task.

    The split of the inputs is drawn from a generator seeded with ``seed + samples``, so two splits
    of different sizes are different samples of the same clusters.

    Example:
        >>> data = synthetic_classification(samples=10, features=3, classes=2)
        >>> len(data), data[0][0].shape, data.num_classes, data.in_features
        (10, torch.Size([3]), 2, 3)
    """
    for name, value in (
        ("samples", samples),
        ("features", features),
        ("classes", classes),
        ("clusters_per_class", clusters_per_class),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    centres = torch.randn(classes * clusters_per_class, features, generator=torch.Generator().manual_seed(seed)) * 3
    generator = torch.Generator().manual_seed(seed + samples)
    cluster = torch.randint(0, classes * clusters_per_class, (samples,), generator=generator)
    inputs = centres[cluster] + noise * torch.randn(samples, features, generator=generator)
    dataset = TensorDataset(inputs, cluster % classes)
    dataset.num_classes = classes  # type: ignore[attr-defined]  # read by the config builder
    dataset.in_features = features  # type: ignore[attr-defined]
    return dataset
