"""Fixtures shared by the tests; the helpers they build on are in :mod:`tests.helpers`."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader

from tests.helpers import make_loader


@pytest.fixture
def loader() -> DataLoader:
    return make_loader()
