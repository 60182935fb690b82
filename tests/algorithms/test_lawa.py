from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from composer_swa import LAWA, Trainer
from tests.algorithms.helpers import train_plain_loop
from tests.helpers import WeightRecorder, fit_evaluating_every_epoch, flat_weights, make_loader, mlp, quiet


def train(lawa: LAWA, max_duration: str = "5ep", **kwargs: Any) -> tuple[torch.nn.Module, WeightRecorder]:
    model = mlp(batch_norm=kwargs.pop("batch_norm", False))
    recorder = WeightRecorder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    Trainer(model, make_loader(), max_duration, algorithms=[recorder, lawa], optimizers=optimizer, **quiet(**kwargs)).fit()
    return model, recorder


def test_window_holds_the_latest_snapshots_and_the_model_their_mean() -> None:
    lawa = LAWA(window=3, update_interval="1ep")
    model, recorder = train(lawa)
    assert lawa.snapshot_batches == [12, 16, 20] and len(lawa.snapshots) == 3
    for snapshot, batch in zip(lawa.snapshots, lawa.snapshot_batches):
        kept = torch.cat([snapshot.state_dict()[name].double().flatten() for name, _ in model.named_parameters()])
        assert torch.equal(kept, recorder.weights[batch])
    expected = np.mean([recorder.weights[b].numpy() for b in (12, 16, 20)], axis=0)
    np.testing.assert_allclose(flat_weights(model).numpy(), expected, rtol=0, atol=1e-6)
    assert lawa.training_weights is not None


def test_batch_interval_and_start() -> None:
    lawa = LAWA(window=4, update_interval="3ba", lawa_start="0.5dur")  # 20 batches: snapshots at 10, 13, 16, 19
    model, recorder = train(lawa)
    assert lawa.snapshot_batches == [10, 13, 16, 19]
    expected = np.mean([recorder.weights[b].numpy() for b in (10, 13, 16, 19)], axis=0)
    np.testing.assert_allclose(flat_weights(model).numpy(), expected, rtol=0, atol=1e-6)


def test_snapshots_live_on_the_cpu() -> None:
    lawa = LAWA(window=2)
    train(lawa, max_duration="2ep")
    assert all(view.device.type == "cpu" for snapshot in lawa.snapshots for view in snapshot.state_dict().values())


def test_evaluation_uses_the_window_mean_then_training_continues_from_live_weights() -> None:
    lawa = LAWA(window=2, update_interval="2ba", replace_at_fit_end=False)
    model, recorder, seen = fit_evaluating_every_epoch(lawa)
    np.testing.assert_allclose(seen.during[0].numpy(), (recorder.weights[2] + recorder.weights[4]).numpy() / 2, atol=1e-6)
    np.testing.assert_allclose(seen.during[1].numpy(), (recorder.weights[6] + recorder.weights[8]).numpy() / 2, atol=1e-6)
    assert torch.equal(flat_weights(model), recorder.weights[8])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window must be an int >= 1, got 0"),
        ({"window": 2.5}, "window must be an int >= 1, got 2.5"),
        ({"update_interval": "0.1dur"}, "update_interval must be at least 1 in 'ba' or 'ep', got '0.1dur'"),
        ({"lawa_start": "soon"}, "lawa_start"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LAWA(**kwargs)


def test_state_dict_round_trip_continues_exactly() -> None:
    def run(**kwargs: Any) -> tuple[torch.Tensor, dict[str, Any] | None]:
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        return train_plain_loop(model, optimizer, [LAWA(window=3, update_interval="2ba")], **kwargs)

    uninterrupted, _ = run()
    _, saved = run(stop_at=9)
    assert saved is not None and saved["algorithms"]["LAWA"]["snapshot_batches"] == [4, 6, 8]
    resumed, _ = run(saved=saved)
    assert torch.equal(resumed, uninterrupted)
