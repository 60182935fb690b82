"""Schedule-derived weights: LAWA's last k, and merges that emulate an LR decay, checked on a real run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from composer_swa.merging.recipes import decay_emulating_weights, last_k_weights, layer_index


def test_last_k() -> None:
    assert last_k_weights(4, 3) == [0, 1 / 3, 1 / 3, 1 / 3]
    with pytest.raises(ValueError, match=r"last k must lie in \[1, 4\] for 4 inputs, got 5"):
        last_k_weights(4, 5)


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_merging_constant_lr_checkpoints_equals_a_decayed_run(shape: str) -> None:
    """On a loss with a constant gradient, the merged checkpoints equal a run whose LR followed the decay.

    With a constant LR each checkpoint is θ_i = θ_0 − η·i·s·g (s steps apart). A run whose LR on
    segment i is η·decay((i−1)/n) ends at θ_0 − η·s·g·Σ_i decay((i−1)/n): the merge must land there.
    """
    count, steps_apart, lr = 8, 5, 0.1
    gradient = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    start = torch.tensor([3.0, 1.0, -1.0], dtype=torch.float64)
    checkpoints = [start - lr * steps_apart * i * gradient for i in range(1, count + 1)]
    decay = {"linear": lambda x: 1 - x, "1-sqrt": lambda x: 1 - math.sqrt(x)}[shape]

    weights = decay_emulating_weights(count, shape)
    merged = sum(w * c for w, c in zip(weights, checkpoints))
    decayed_run = start.clone()
    for segment in range(1, count + 1):
        for _ in range(steps_apart):
            decayed_run -= lr * decay((segment - 1) / count) * gradient

    assert sum(weights) == pytest.approx(1.0)
    np.testing.assert_allclose(merged.numpy(), decayed_run.numpy(), rtol=1e-12)


def test_linear_decay_is_the_uniform_mean_and_1_minus_sqrt_weighs_the_earliest_most() -> None:
    assert decay_emulating_weights(5, "linear") == pytest.approx([0.2] * 5)
    weights = decay_emulating_weights(5, "1-sqrt")
    assert weights[0] == pytest.approx(math.sqrt(1 / 5)) and weights[-1] == pytest.approx(1 - math.sqrt(4 / 5))
    assert weights == sorted(weights, reverse=True)
    with pytest.raises(ValueError, match=r"decay shape must be one of \['1-sqrt', 'linear'\], got 'cosine'"):
        decay_emulating_weights(3, "cosine")


def test_layer_index() -> None:
    assert layer_index("model.layers.12.mlp.weight") == 12
    assert layer_index("h.0.attn.weight") == 0
    assert layer_index("lm_head.weight") is None
