"""RNG states survive a weights-only round trip and put every generator back."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa.checkpoint import capture_rng, restore_rng
from tests.helpers import weights_only_round_trip


def draws(loader: DataLoader) -> tuple[float, float, float, list[int]]:
    order = [int(x) for batch in loader for x in batch[0]]
    return random.random(), float(np.random.rand()), float(torch.rand(())), order


def test_every_generator_draws_the_same_numbers_after_a_weights_only_round_trip() -> None:
    loader = DataLoader(TensorDataset(torch.arange(10)), batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(1))
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's state
    saved = capture_rng(loader)
    reloaded = weights_only_round_trip(saved)

    expected = draws(loader), random.gauss(0, 1)
    draws(loader)  # move everything on
    restore_rng(reloaded, loader)

    assert (draws(loader), random.gauss(0, 1)) == expected


def test_restoring_into_a_loader_with_other_generators_is_refused() -> None:
    saved = capture_rng(DataLoader(TensorDataset(torch.arange(4)), shuffle=True, generator=torch.Generator()))

    with pytest.raises(ValueError, match=r"state of 1 data loader generator\(s\), this run's train_dataloader has 0"):
        restore_rng(saved, DataLoader(TensorDataset(torch.arange(4)), shuffle=True))
