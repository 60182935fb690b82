"""What users of the other peers expect, each against that peer's own rule: torch's SWALR with one LR per
param group, ``use_buffers=False`` (torch's AveragedModel, Lightning; timm's ``exclude_buffers``),
Lightning's ``should_update`` hook, and timm ModelEmaV3's ``min_decay`` and ``update_after_step``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn

from composer_swa import EMA, LAWA, SWA, Callback, State, Trainer
from composer_swa.algorithms.averaging_algorithm import AveragingAlgorithm
from composer_swa.config import build_run, validate_config
from composer_swa.integrations import AlgorithmRunner
from composer_swa.loggers import Logger
from tests.helpers import make_loader, mlp, quiet, train_recording_weights

Recorded = dict[int, dict[str, torch.Tensor]]


def run_recording(algorithm: AveragingAlgorithm, max_duration: str = "3ep", lr: float = 0.3) -> tuple[torch.nn.Module, Recorded]:
    """SGD on an MLP with batch norm through a plain loop; the model and its state dict after every step (from 1)."""
    model = mlp(batch_norm=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.5)
    runner = AlgorithmRunner([algorithm], model, optimizer, list(make_loader()), max_duration, loggers=[])
    runner.fit_start()
    recorded = train_recording_weights(runner, model, optimizer)
    runner.fit_end()
    return model, recorded


def oracle_average(recorded: Recorded, steps: list[int], multi_avg_fn: Any = None) -> dict[str, torch.Tensor]:
    """torch's ``AveragedModel(use_buffers=False)`` updated with the weights after each of ``steps``."""
    live = mlp(batch_norm=True)
    averaged = AveragedModel(live, use_buffers=False, multi_avg_fn=multi_avg_fn)
    for step in steps:
        live.load_state_dict(recorded[step])
        averaged.update_parameters(live)
    return averaged.module.state_dict()


def assert_state_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        torch.testing.assert_close(got[name].to(want[name].dtype), want[name], rtol=1e-5, atol=1e-6, msg=name)


# One swa_lr per param group: torch's SWALR takes a list -----------------------------------------------


class GroupLRs(Callback):
    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}

    def batch_start(self, state: State, logger: Logger) -> None:
        self.lrs[state.timestamp.batch_count + 1] = [group["lr"] for group in state.optimizers[0].param_groups]


def two_groups(model: torch.nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD([{"params": model[0].parameters(), "lr": 1.0}, {"params": model[2].parameters(), "lr": 0.5}])


@pytest.mark.parametrize(("ours", "torchs"), [("linear", "linear"), ("cos", "cos")])
def test_swa_lr_per_param_group_follows_torchs_swalr_given_the_same_list(ours: str, torchs: Any) -> None:
    model, seen = mlp(), GroupLRs()
    swa = SWA(
        swa_start="4ba", update_interval="1ba", schedule_swa_lr=True, swa_lr=[0.2, 0.1], anneal_steps=3, anneal_strategy=ours
    )
    Trainer(model, make_loader(), "10ba", optimizers=two_groups(model), algorithms=[swa], callbacks=[seen], **quiet()).fit()
    # The peer: SWALR stepped once per update from swa_start, as torch's docs step it once per epoch.
    reference = two_groups(mlp())
    scheduler = SWALR(reference, swa_lr=[0.2, 0.1], anneal_epochs=3, anneal_strategy=torchs)
    expected = {}
    for count in range(4, 10):  # the batch after completed batch `count` uses SWALR's LR after count - 3 steps
        reference.step()
        scheduler.step()
        expected[count + 1] = [group["lr"] for group in reference.param_groups]
    assert [seen.lrs[k] for k in range(1, 5)] == [[1.0, 0.5]] * 4
    for count, lrs in expected.items():
        assert seen.lrs[count] == pytest.approx(lrs, rel=1e-12), count
    assert seen.lrs[10] == pytest.approx([0.2, 0.1])


def test_a_list_of_swa_lr_must_give_one_per_group_of_every_optimizer() -> None:
    model = mlp()
    swa = SWA(swa_start="4ba", update_interval="1ba", schedule_swa_lr=True, swa_lr=[0.2, 0.1])
    with pytest.raises(ValueError, match=r"swa_lr=\[0.2, 0.1\] gives one LR per param group, but optimizer 0 \(SGD\) has 1"):
        Trainer(
            model, make_loader(), "8ba", optimizers=torch.optim.SGD(model.parameters(), lr=0.1), algorithms=[swa], **quiet()
        ).fit()


# use_buffers=False: the average holds the live buffers as of its last update -----------------------------


def test_swa_without_buffers_equals_torchs_averaged_model_with_use_buffers_false() -> None:
    swa = SWA(swa_start="4ba", update_interval="2ba", bn_update=False, use_buffers=False)
    model, recorded = run_recording(swa, "12ba")
    expected = oracle_average(recorded, [4, 6, 8, 10, 12])
    assert_state_close(model.state_dict(), expected)
    # The buffers are the live ones after the last update, not an average of them.
    torch.testing.assert_close(model.state_dict()["1.running_mean"], recorded[12]["1.running_mean"])


def test_ema_without_buffers_equals_torchs_averaged_model_with_an_ema_fn() -> None:
    ema = EMA(smoothing=0.8, update_interval="1ba", use_buffers=False)
    model, recorded = run_recording(ema, "10ba")
    expected = oracle_average(recorded, list(range(1, 11)), get_ema_multi_avg_fn(0.8))
    assert_state_close(model.state_dict(), expected)
    with_buffers, recorded_again = run_recording(EMA(smoothing=0.8, update_interval="1ba"), "10ba")
    # By default the running statistics are averaged too: then they are not the live ones.
    assert not torch.allclose(with_buffers.state_dict()["1.running_var"], recorded_again[10]["1.running_var"])


def test_lawa_without_buffers_takes_the_newest_snapshots_buffers() -> None:
    lawa = LAWA(window=2, update_interval="1ep", use_buffers=False)
    model, recorded = run_recording(lawa, "3ep")
    final = model.state_dict()
    for name, tensor in final.items():
        if name.startswith("1.") and not name.endswith(("weight", "bias")):
            torch.testing.assert_close(tensor, recorded[12][name])  # a buffer: the newest snapshot's
        else:
            mean = (recorded[8][name].double() + recorded[12][name].double()) / 2
            np.testing.assert_allclose(tensor.double().numpy(), mean.numpy(), rtol=1e-6, atol=1e-7)


def test_use_buffers_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="use_buffers must be True or False, got 'no'"):
        EMA(use_buffers="no")  # type: ignore[arg-type]


# should_update: a user's policy over the same schedule (Lightning's hook) ---------------------------------


class EveryThirdStep(EMA):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked: list[tuple[int | None, int | None]] = []

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        self.asked.append((step_idx, epoch_idx))
        return step_idx is not None and step_idx % 3 == 2


def test_should_update_is_asked_at_every_scheduled_update_and_decides_which_happen() -> None:
    ema = EveryThirdStep(smoothing=0.5, update_interval="1ba")
    model, recorded = run_recording(ema, "10ba")
    assert ema.asked == [(step, None) for step in range(10)]  # zero-based, as Lightning's step_idx
    assert ema.n_updates == 3  # after steps 2, 5, 8: batches 3, 6, 9
    expected = recorded[3]["0.weight"].double().numpy()
    for batch in (6, 9):
        expected = 0.5 * expected + 0.5 * recorded[batch]["0.weight"].double().numpy()
    np.testing.assert_allclose(model.state_dict()["0.weight"].double().numpy(), expected, rtol=1e-6)


class FromEpoch(LAWA):
    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= 1


def test_an_epoch_schedule_asks_with_the_epoch_index() -> None:
    lawa = FromEpoch(window=5, update_interval="1ep")
    run_recording(lawa, "4ep")
    assert lawa.snapshot_batches == [8, 12, 16]  # epochs 1, 2, 3 (zero-based) end after these batches


class LateSWA(SWA):
    def __init__(self, first_step: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_step = first_step
        self.asked: list[int | None] = []

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        self.asked.append(step_idx)
        return step_idx is not None and step_idx >= self.first_step


def test_swa_averages_only_the_updates_should_update_accepts() -> None:
    swa = LateSWA(first_step=7, swa_start="0.0dur", update_interval="1ba", bn_update=False, use_buffers=False)
    model, recorded = run_recording(swa, "10ba")
    assert swa.asked == list(range(-1, 10))  # -1: the initial weights, a window from batch 0
    assert swa.n_averaged == 3
    assert_state_close(model.state_dict(), oracle_average(recorded, [8, 9, 10]))


def test_swa_keeps_the_live_weights_when_should_update_refuses_every_update() -> None:
    swa = LateSWA(first_step=100, swa_start="4ba", update_interval="1ba", bn_update=False)
    with pytest.warns(UserWarning, match="should_update accepted no update in the window; the model keeps the live weights"):
        model, recorded = run_recording(swa, "8ba")
    assert swa.n_averaged == 0 and swa.training_weights is None
    assert_state_close(model.state_dict(), recorded[8])


def test_should_update_must_answer_true_or_false() -> None:
    class Forgetful(EMA):
        def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
            return None  # type: ignore[return-value]

    with pytest.raises(TypeError, match=r"Forgetful\.should_update must return True or False, got None"):
        run_recording(Forgetful(half_life="4ba"), "2ba")


# timm ModelEmaV3: decay warm-up clamped to [min_decay, decay], no averaging before update_after_step ------


def timm_decay(step: int, decay: float, min_decay: float, update_after_step: int, gamma: float, power: float) -> float:
    """timm's ``ModelEmaV3.get_decay(step)`` with ``use_warmup=True``, written out."""
    step = max(0, step - update_after_step - 1)
    if step <= 0:
        return 0.0
    return max(min(1 - (1 + step / gamma) ** -power, decay), min_decay)


def test_ema_follows_timms_warmup_with_min_decay_and_update_after_step() -> None:
    decay, min_decay, after, gamma, power = 0.9, 0.5, 2, 1.0, 0.75
    ema = EMA(smoothing=decay, warmup_gamma=gamma, warmup_power=power, min_decay=min_decay, ema_start=f"{after + 1}ba")
    model, recorded = run_recording(ema, "8ep")  # 32 steps: the warm-up passes min_decay (t=1) and decay (t=21)
    decays = [timm_decay(step, decay, min_decay, after, gamma, power) for step in range(1, 33)]
    assert decays[3] == min_decay and decays[-1] == decay and min_decay < decays[5] < decay  # every regime is used
    for name in ("0.weight", "1.running_mean", "3.bias"):
        # timm's loop: the EMA starts as a copy of the model and is updated after each optimizer step `step`.
        expected = recorded[1][name].double().numpy()
        for step in range(1, 33):
            expected = decays[step - 1] * expected + (1 - decays[step - 1]) * recorded[step][name].double().numpy()
        np.testing.assert_allclose(model.state_dict()[name].double().numpy(), expected, rtol=1e-5, atol=1e-7)


def test_smoothing_at_is_timms_decay_for_every_update() -> None:
    ema = EMA(smoothing=0.999, warmup_gamma=2.0, warmup_power=2 / 3, min_decay=0.3)
    for update in range(1, 2000, 7):
        assert ema.smoothing_at(update) == pytest.approx(timm_decay(update + 1, 0.999, 0.3, 0, 2.0, 2 / 3), rel=1e-12)
    assert math.isclose(ema.smoothing_at(1), 0.3)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"smoothing": 0.9, "min_decay": 0.5},
            r"min_decay=0.5 bounds the decay warm-up from below, but there is none; set warmup_gamma",
        ),
        (
            {"smoothing": 0.9, "warmup_gamma": 1.0, "min_decay": 0.95},
            r"min_decay must be a number in \[0, smoothing=0.9\], got 0.95",
        ),
        (
            {"smoothing": 0.9, "warmup_gamma": 1.0, "min_decay": "0.1"},
            r"min_decay must be a number in \[0, smoothing=0.9\], got '0.1'",
        ),
    ],
)
def test_bad_min_decay_is_named(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EMA(**arguments)


# The new arguments from YAML ------------------------------------------------------------------------------


def test_the_new_arguments_work_from_a_config() -> None:
    config = {
        "model": {"name": "mlp", "hidden": [8]},
        "data": {"train": {"name": "synthetic", "samples": 16, "features": 3, "classes": 2, "batch_size": 8}},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "trainer": {"max_duration": "4ep", "progress_bar": False},
        "algorithms": [
            {"name": "swa", "swa_lr": [0.05], "schedule_swa_lr": True, "use_buffers": False},
            {
                "name": "ema",
                "smoothing": 0.9,
                "warmup_gamma": 1.0,
                "min_decay": 0.2,
                "use_buffers": False,
                "replace_at_fit_end": False,
                "eval_with_average": False,
            },
            {"name": "lawa", "use_buffers": False, "replace_at_fit_end": False, "eval_with_average": False},
        ],
    }
    swa, ema, lawa = build_run(validate_config(config, "t")).algorithms
    assert (swa.swa_lr, swa.use_buffers) == ([0.05], False)
    assert (ema.min_decay, ema.use_buffers, lawa.use_buffers) == (0.2, False, False)
    bad = config | {"algorithms": [{"name": "ema", "smoothing": 0.9, "min_decay": 0.2}]}
    with pytest.raises(Exception, match=r"min_decay=0\.2 bounds the decay warm-up"):
        validate_config(bad, "t")
