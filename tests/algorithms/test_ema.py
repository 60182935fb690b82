from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from composer_swa import EMA, Trainer
from tests.algorithms.helpers import train_plain_loop
from tests.helpers import WeightRecorder, fit_evaluating_every_epoch, flat_weights, make_loader, mlp, quiet


def train(ema: EMA, max_duration: str = "4ep", **kwargs: Any) -> tuple[torch.nn.Module, WeightRecorder]:
    model = mlp(batch_norm=kwargs.pop("batch_norm", False))
    recorder = WeightRecorder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    Trainer(model, make_loader(), max_duration, algorithms=[recorder, ema], optimizers=optimizer, **quiet(**kwargs)).fit()
    return model, recorder


def reference_ema(snapshots: list[np.ndarray], smoothings: list[float]) -> np.ndarray:
    """The EMA formula in float64: start at the first snapshot, then ema = s*ema + (1-s)*w."""
    ema = snapshots[0]
    for weights, s in zip(snapshots[1:], smoothings):
        ema = s * ema + (1 - s) * weights
    return ema


def test_half_life_form_matches_the_hand_computed_ema() -> None:
    # 4 batches an epoch, 16 in all; updates every 2 batches from batch 4: 4, 6, ..., 16.
    ema = EMA(half_life="6ba", update_interval="2ba", ema_start="0.25dur")
    model, recorder = train(ema)
    assert ema.smoothing == pytest.approx(2 ** (-2 / 6))
    batches = list(range(4, 17, 2))
    assert ema.n_updates == len(batches)
    expected = reference_ema([recorder.weights[b].numpy() for b in batches], [ema.smoothing] * (len(batches) - 1))
    np.testing.assert_allclose(flat_weights(model).numpy(), expected, rtol=0, atol=1e-6)
    # The training weights are kept beside the EMA.
    assert ema.training_weights is not None
    kept = torch.cat([ema.training_weights[name].double().flatten() for name, _ in model.named_parameters()])
    assert torch.equal(kept, recorder.weights[16])


def test_smoothing_form_defaults_to_every_batch() -> None:
    ema = EMA(half_life=None, smoothing=0.8)  # as ported from Composer
    model, recorder = train(ema, max_duration="2ep")
    assert ema.update_interval.value == 1 and ema.n_updates == 8
    expected = reference_ema([recorder.weights[b].numpy() for b in range(1, 9)], [0.8] * 7)
    np.testing.assert_allclose(flat_weights(model).numpy(), expected, rtol=0, atol=1e-6)


def test_epoch_interval_updates_at_epoch_ends() -> None:
    ema = EMA(half_life="2ep")
    model, recorder = train(ema)
    expected = reference_ema([recorder.weights[b].numpy() for b in (4, 8, 12, 16)], [2**-0.5] * 3)
    np.testing.assert_allclose(flat_weights(model).numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("ema", "batches"),
    [
        (lambda: EMA(smoothing=0.5, update_interval="4ba", ema_start="2ba"), [2, 6, 10, 14]),
        (lambda: EMA(smoothing=0.5, update_interval="2ep", ema_start="1ep"), [4, 12]),
        (lambda: EMA(smoothing=0.5, update_interval="2ep", ema_start="5ba"), [8, 16]),  # the first epoch end at or after it
    ],
)
def test_updates_count_from_ema_start(ema: Any, batches: list[int]) -> None:
    """The grid of composer_swa.Schedule, as SWA's: ema_start, then every update_interval (not multiples from batch 0)."""
    algorithm = ema()
    model, recorder = train(algorithm)
    assert algorithm.n_updates == len(batches)
    expected = reference_ema([recorder.weights[b].numpy() for b in batches], [0.5] * (len(batches) - 1))
    np.testing.assert_allclose(flat_weights(model).numpy(), expected, rtol=0, atol=1e-6)


def test_decay_warmup_follows_timm_formula() -> None:
    ema = EMA(smoothing=0.99, warmup_gamma=1.0, warmup_power=0.75)
    for t in (1, 5, 50, 10_000):
        assert ema.smoothing_at(t) == pytest.approx(min(0.99, 1 - (1 + t) ** -0.75))
    model, recorder = train(ema, max_duration="2ep")
    smoothings = [min(0.99, 1 - (1 + t) ** -0.75) for t in range(1, 8)]
    expected = reference_ema([recorder.weights[b].numpy() for b in range(1, 9)], smoothings)
    np.testing.assert_allclose(flat_weights(model).numpy(), expected, rtol=0, atol=1e-6)


def test_replace_at_fit_end_false_keeps_the_training_weights() -> None:
    ema = EMA(half_life="2ba", replace_at_fit_end=False)
    model, recorder = train(ema, max_duration="1ep")
    assert torch.equal(flat_weights(model), recorder.weights[4])
    assert ema.average is not None and ema.training_weights is None


def test_evaluation_during_fit_uses_the_ema_then_restores_the_live_weights() -> None:
    ema = EMA(smoothing=0.5, replace_at_fit_end=False)
    model, recorder, seen = fit_evaluating_every_epoch(ema)
    first_epoch = reference_ema([recorder.weights[b].numpy() for b in range(1, 5)], [0.5] * 3)
    np.testing.assert_allclose(seen.during[0].numpy(), first_epoch, rtol=0, atol=1e-6)
    # Training went on from the live weights, not the EMA: batch 5 started from the weights after batch 4.
    assert torch.equal(seen.after[3], recorder.weights[4])
    assert torch.equal(flat_weights(model), recorder.weights[8])


def test_batch_norm_buffers_are_averaged_and_integer_buffers_copied() -> None:
    ema = EMA(smoothing=0.5)
    model, _ = train(ema, max_duration="1ep", batch_norm=True)
    bn = model[1]
    assert int(bn.num_batches_tracked) == 4  # copied, not averaged
    assert ema.training_weights is not None
    assert not torch.equal(bn.running_mean, ema.training_weights["1.running_mean"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"half_life": "10ba", "smoothing": 0.9}, "exactly one of half_life and smoothing"),
        ({"smoothing": 1.0}, "smoothing must be a number in \\(0, 1\\), got 1.0"),
        ({"half_life": "0.5dur"}, "half_life must be > 0 in 'ba' or 'ep', got '0.5dur'"),
        ({"half_life": "10ba", "update_interval": "1ep"}, "same unit"),
        ({"half_life": "10bx"}, "half_life"),
        ({"smoothing": 0.9, "update_interval": "0ba"}, "update_interval must be at least 1"),
        ({"smoothing": 0.9, "warmup_gamma": 0}, "warmup_gamma must be > 0"),
        ({"smoothing": 0.9, "ema_start": "1.5dur"}, "must lie in \\[0, 1\\]"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EMA(**kwargs)


def test_state_dict_round_trip_continues_exactly() -> None:
    def run(**kwargs: Any) -> tuple[torch.Tensor, dict[str, Any] | None]:
        model = mlp()
        return train_plain_loop(
            model, torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9), [EMA(half_life="3ba")], **kwargs
        )

    uninterrupted, _ = run()
    _, saved = run(stop_at=6)
    assert saved is not None and saved["algorithms"]["EMA"]["n_updates"] == 6
    resumed, _ = run(saved=saved)
    assert torch.equal(resumed, uninterrupted)
