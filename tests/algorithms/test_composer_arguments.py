"""SWA and EMA take Composer's arguments (composer/algorithms/swa/swa.py, ema/ema.py) with its names, order,
defaults and spellings; the deliberate differences are the README's "What we do differently"."""

from __future__ import annotations

import copy
import inspect
import math

import numpy as np
import pytest
import torch

from composer_swa.algorithms import EMA, SWA
from composer_swa.algorithms.ema import compute_ema

#: Composer's signatures, in order, with their defaults.
COMPOSER_SWA = {
    "swa_start": "0.7dur", "swa_end": "0.97dur", "update_interval": "1ep", "schedule_swa_lr": False,
    "anneal_strategy": "linear", "anneal_steps": 10, "swa_lr": None,
}  # fmt: skip
COMPOSER_EMA = {"half_life": "1000ba", "smoothing": None, "ema_start": "0.0dur", "update_interval": None}
#: Where our default differs on purpose (README: a real batch-norm pass makes the end of the run the right swap).
OUR_DEFAULTS = {"swa_end": "1.0dur"}


@pytest.mark.parametrize(("algorithm", "composer"), [(SWA, COMPOSER_SWA), (EMA, COMPOSER_EMA)])
def test_composers_arguments_come_first_in_its_order_with_its_defaults(algorithm: type, composer: dict[str, object]) -> None:
    parameters = list(inspect.signature(algorithm).parameters.values())[: len(composer)]
    assert [p.name for p in parameters] == list(composer)  # positional calls port too
    for parameter in parameters:
        assert parameter.default == OUR_DEFAULTS.get(parameter.name, composer[parameter.name]), parameter.name


def test_a_composer_swa_call_with_every_argument_positionally() -> None:
    swa = SWA("6ep", "8ep", "5ba", True, "cos", 4, 0.05)
    assert (str(swa.swa_start), str(swa.swa_end), str(swa.update_interval)) == ("6ep", "8ep", "5ba")
    assert (swa.schedule_swa_lr, swa.anneal_strategy, swa.anneal_steps, swa.swa_lr) == (True, "cosine", 4, 0.05)


@pytest.mark.parametrize(
    ("spelling", "strategy"), [("linear", "linear"), ("lin", "linear"), ("cos", "cosine"), ("COSINE", "cosine")]
)
def test_composers_anneal_strategy_spellings(spelling: str, strategy: str) -> None:
    assert SWA(anneal_strategy=spelling).anneal_strategy == strategy


def test_anneal_steps_stays_an_int_and_the_error_says_so() -> None:
    with pytest.raises(
        ValueError, match=r"anneal_steps must be an int >= 0, got '10ep': it counts optimizer steps, an int as in Composer"
    ):
        SWA(anneal_steps="10ep")  # type: ignore[arg-type]


def test_swa_lr_none_is_kept_and_never_overwritten() -> None:
    swa = SWA(schedule_swa_lr=True)
    assert swa.swa_lr is None


@pytest.mark.parametrize(
    ("arguments", "smoothing", "interval"),
    [
        ({"half_life": "10ba", "update_interval": "1ba"}, math.exp(-math.log(2) / 10), "1ba"),
        ({"half_life": "1ep", "update_interval": "1ep"}, 0.5, "1ep"),
        ({"half_life": "1000ba"}, math.exp(-math.log(2) / 1000), "1ba"),  # update_interval: one unit of half_life
        ({"half_life": "8ep"}, 2 ** (-1 / 8), "1ep"),
        ({"half_life": None, "smoothing": 0.999, "update_interval": "1ba"}, 0.999, "1ba"),  # Composer's spelling
        ({"smoothing": 0.999}, 0.999, "1ba"),  # crashes in Composer (no half_life attribute): works here
    ],
)
def test_ema_smoothing_from_half_life_as_composer_computes_it(
    arguments: dict[str, object], smoothing: float, interval: str
) -> None:
    ema = EMA(**arguments)  # type: ignore[arg-type]
    assert ema.smoothing == pytest.approx(smoothing, rel=1e-12)
    assert str(ema.update_interval) == interval


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"half_life": None}, "give exactly one of half_life and smoothing"),
        ({"half_life": "10ba", "smoothing": 0.9}, "give exactly one of half_life and smoothing"),
        ({"half_life": "10ba", "update_interval": "1ep"}, "update_interval and half_life must use the same unit"),
    ],
)
def test_ema_refuses_what_composer_refuses(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EMA(**arguments)  # type: ignore[arg-type]


def conv_bn() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(), torch.nn.Linear(8, 2))


@pytest.mark.parametrize("smoothing", [0, 0.5, 0.99, 1])
def test_compute_ema_as_composers_test_checks_it(smoothing: float) -> None:
    torch.manual_seed(0)
    model, ema_model = conv_bn(), conv_bn()
    model(torch.randn(4, 1, 4, 4))  # live running statistics and num_batches_tracked = 1
    original = copy.deepcopy(ema_model)
    compute_ema(model=model, ema_model=ema_model, smoothing=smoothing)
    live, old, new = model.state_dict(), original.state_dict(), ema_model.state_dict()
    for name, tensor in live.items():
        if tensor.is_floating_point():
            expected = old[name].double().numpy() * smoothing + (1.0 - smoothing) * tensor.double().numpy()
            np.testing.assert_allclose(new[name].double().numpy(), expected, rtol=1e-6, atol=1e-7)
        else:  # Composer blends and truncates the counter; we take the live one
            assert torch.equal(new[name], tensor)


def test_compute_ema_refuses_a_smoothing_outside_zero_one() -> None:
    with pytest.raises(ValueError, match=r"smoothing must be a number in \[0, 1\], got 1\.5"):
        compute_ema(conv_bn(), conv_bn(), smoothing=1.5)


def test_ema_model_is_composers_name_for_the_average() -> None:
    ema = EMA(half_life="4ba")
    assert ema.ema_model is None  # before FIT_START
