from __future__ import annotations

from pathlib import Path

import pytest
import torch

from composer_swa.data.char_text import char_text
from composer_swa.data.synthetic import synthetic_classification


def test_char_text_targets_are_the_inputs_shifted_by_one(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("the quick brown fox jumps over the lazy dog " * 5)
    train, evaluation = char_text(str(path), block_size=10, split="train"), char_text(str(path), block_size=10, split="eval")
    assert train.vocabulary == evaluation.vocabulary  # one vocabulary for both splits
    x, y = train[1]
    assert train.decode(x) == path.read_text()[10:20] and train.decode(y) == path.read_text()[11:21]
    assert len(train) == (int(len(path.read_text()) * 0.9) - 1) // 10


def test_synthetic_splits_share_clusters_but_not_samples() -> None:
    train, test = synthetic_classification(samples=100, seed=3), synthetic_classification(samples=50, seed=3)
    assert not torch.equal(train.tensors[0][:50], test.tensors[0])
    assert torch.equal(train.tensors[0], synthetic_classification(samples=100, seed=3).tensors[0])
    with pytest.raises(ValueError, match="classes must be an int >= 1, got 0"):
        synthetic_classification(classes=0)
