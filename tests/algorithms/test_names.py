"""Averages are keyed exactly like the model's own ``state_dict()``: a child named ``module`` is not a wrapper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from composer_swa import EMA, Trainer
from tests.algorithms.helpers import train_plain_loop
from tests.helpers import ChildNamedModule, WeightRecorder, make_loader, quiet


def _hand_ema(recorder: WeightRecorder, model: torch.nn.Module, smoothing: float) -> dict[str, np.ndarray]:
    """EMA of the recorded weights after every batch (the first update copies), by the model's parameter names."""
    ema = None
    for batch in sorted(recorder.weights)[1:]:  # [0] is FIT_START
        w = recorder.weights[batch].numpy()
        ema = w.copy() if ema is None else smoothing * ema + (1 - smoothing) * w
    assert ema is not None
    named, offset = {}, 0
    for name, parameter in model.named_parameters():
        named[name] = ema[offset : offset + parameter.numel()].reshape(tuple(parameter.shape))
        offset += parameter.numel()
    return named


def test_ema_keeps_weight_and_module_weight_apart_through_a_state_dict_round_trip() -> None:
    model, recorder = ChildNamedModule(), WeightRecorder()
    ema = EMA(smoothing=0.5, update_interval="1ba", replace_at_fit_end=False)
    train_plain_loop(model, torch.optim.SGD(model.parameters(), lr=0.1), [recorder, ema])
    expected = _hand_ema(recorder, model, 0.5)
    assert set(model.state_dict()) == {"weight", "module.weight"}

    averaged = ema.averaged_weights()
    assert averaged is not None and set(averaged) == {"weight", "module.weight"}
    for name, reference in expected.items():
        np.testing.assert_allclose(averaged[name].double().numpy(), reference, rtol=1e-6, atol=1e-7)

    # Stop after batch 6, save the whole state weights-only, resume in a fresh model: same average.
    first, resumed_ema = ChildNamedModule(), EMA(smoothing=0.5, update_interval="1ba", replace_at_fit_end=False)
    _, saved = train_plain_loop(first, torch.optim.SGD(first.parameters(), lr=0.1), [resumed_ema], stop_at=6)
    assert saved is not None and set(saved["algorithms"]["EMA"]["average"]) == {"weight", "module.weight"}
    second, resumed_ema = ChildNamedModule(), EMA(smoothing=0.5, update_interval="1ba", replace_at_fit_end=False)
    train_plain_loop(second, torch.optim.SGD(second.parameters(), lr=0.1), [resumed_ema], saved=saved)
    after_resume = resumed_ema.averaged_weights()
    assert after_resume is not None
    for name, reference in expected.items():
        assert after_resume[name].abs().sum() > 0
        np.testing.assert_allclose(after_resume[name].double().numpy(), reference, rtol=1e-6, atol=1e-7)


def test_trainer_checkpoints_and_exports_every_tensor_under_the_model_s_own_name(tmp_path: Path) -> None:
    ema = EMA(smoothing=0.5, update_interval="1ba")
    trainer = Trainer(ChildNamedModule(), make_loader(), "2ba", algorithms=[ema], save_folder=tmp_path, **quiet())
    trainer.fit()
    average = load_file(tmp_path / "final" / "EMA-average.safetensors")
    training = load_file(tmp_path / "final" / "EMA-training.safetensors")
    assert set(average) == set(training) == {"weight", "module.weight"}
    assert ema.training_weights is not None
    for name in ("weight", "module.weight"):
        torch.testing.assert_close(training[name], ema.training_weights[name])
    fresh = ChildNamedModule()
    fresh.load_state_dict(average, strict=True)  # the average loads back into the user's model as is
    torch.testing.assert_close(fresh.state_dict()["module.weight"], trainer.state.model.state_dict()["module.weight"])
