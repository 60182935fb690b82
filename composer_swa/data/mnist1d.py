"""MNIST-1D (Greydanus 2020, https://arxiv.org/abs/2011.14439): 1-D signals of 10 digit templates.

The ``mnist1d`` package generates the data locally from its templates; with the default arguments
that is 4000 training and 1000 test signals of length 40.
"""

from __future__ import annotations

import functools

import torch
from torch.utils.data import TensorDataset

__all__ = ["mnist1d", "mnist1d_datasets"]


@functools.lru_cache(maxsize=4)  # train and test of one seed come from one generation
def mnist1d_datasets(seed: int = 42) -> tuple[TensorDataset, TensorDataset]:
    """Returns ``(train, test)`` datasets of ``(signal[1, 40], label)`` pairs.

    Raises:
        ImportError: When the ``mnist1d`` package is missing, with the command that installs it.

    Example:
        >>> train, test = mnist1d_datasets()
        >>> len(train), len(test), train[0][0].shape
        (4000, 1000, torch.Size([1, 40]))
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as error:
        raise ImportError("MNIST-1D needs the mnist1d package: pip install 'composer_swa[mnist1d]'") from error
    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)

    def as_dataset(signals: object, labels: object) -> TensorDataset:
        return TensorDataset(
            torch.as_tensor(signals, dtype=torch.float32).unsqueeze(1), torch.as_tensor(labels, dtype=torch.long)
        )

    return as_dataset(data["x"], data["y"]), as_dataset(data["x_test"], data["y_test"])


def mnist1d(split: str = "train", seed: int = 42) -> TensorDataset:
    """One split of :func:`mnist1d_datasets`: ``"train"`` (4000 signals) or ``"test"`` (1000).

    Example:
        >>> len(mnist1d("test"))
        1000
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    train, test = mnist1d_datasets(seed)
    dataset = train if split == "train" else test
    dataset.in_features, dataset.num_classes = 40, 10  # type: ignore[attr-defined]  # read by the config builder
    return dataset
