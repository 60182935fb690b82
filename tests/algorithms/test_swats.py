from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from composer_swa import SWATS, Engine, Event, State
from composer_swa.loggers import Logger
from tests.algorithms.helpers import train_plain_loop
from tests.helpers import make_loader, mlp, quiet

LR, BETA1, BETA2, EPS = 0.01, 0.9, 0.999, 1e-8


def watched(swats: SWATS, weight: torch.nn.Parameter, optimizer: torch.optim.Optimizer) -> tuple[State, Engine]:
    """A bare engine around one parameter, so the test can feed Adam the gradients it chooses."""
    model = torch.nn.Module()
    model.weight = weight
    state = State(model=model, max_duration="10ba", train_dataloader=[0] * 10, optimizers=[optimizer], algorithms=[swats])
    engine = Engine(state, Logger())
    engine.run_event(Event.FIT_START)
    return state, engine


def adam_reference(gradients: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """Keskar & Socher's Algorithm 1 by hand: γ_k and the bias-corrected λ_k after each Adam step."""
    m = np.zeros_like(gradients[0])
    v = np.zeros_like(gradients[0])
    ema, gammas, corrected = 0.0, [], []
    for k, g in enumerate(gradients, start=1):
        m = BETA1 * m + (1 - BETA1) * g
        v = BETA2 * v + (1 - BETA2) * g * g
        step = -(LR / (1 - BETA1**k)) * m / (np.sqrt(v) / np.sqrt(1 - BETA2**k) + EPS)
        gamma = float(step @ step / -(step @ g))
        ema = BETA2 * ema + (1 - BETA2) * gamma
        gammas.append(gamma)
        corrected.append(ema / (1 - BETA2**k))
    return gammas, corrected


def test_estimate_matches_the_papers_formula_by_hand() -> None:
    rng = np.random.default_rng(0)
    gradients = [rng.normal(size=5) for _ in range(4)]
    weight = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    swats = SWATS()
    state, _ = watched(swats, weight, torch.optim.Adam([weight], lr=LR, betas=(BETA1, BETA2), eps=EPS))
    gammas, corrected = adam_reference(gradients)
    for k, g in enumerate(gradients):
        weight.grad = torch.from_numpy(g)
        state.optimizers[0].step()
        estimate = swats.estimates[0]
        assert estimate.gamma == pytest.approx(gammas[k], rel=1e-12)
        assert estimate.corrected(BETA2) == pytest.approx(corrected[k], rel=1e-12)
    assert not swats.switched  # random gradients: the estimate has not settled


def test_switch_to_sgd_once_the_estimate_converges() -> None:
    # A constant gradient makes every Adam step equal, so γ_k is constant and the bias-corrected
    # average equals it from k = 2: the paper's criterion fires after the second step.
    g = np.array([0.5, -2.0, 1.0])
    weight = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    swats = SWATS()
    state, engine = watched(swats, weight, torch.optim.Adam([weight], lr=LR, betas=(BETA1, BETA2), eps=EPS))
    for _ in range(2):
        engine.run_event(Event.BATCH_START)
        weight.grad = torch.from_numpy(g)
        state.optimizers[0].step()
        state.timestamp.advance_batch(1, 0)
        engine.run_event(Event.BATCH_END)
    assert swats.switched and swats.switched_at_batch == 2
    _, corrected = adam_reference([g, g])
    sgd = state.optimizers[0]
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["lr"] == pytest.approx((1 - BETA1) * corrected[-1], rel=1e-12)
    assert sgd.param_groups[0]["momentum"] == BETA1
    # The next step is the paper's SGD phase: v = β1·0 + g, w ← w − (1 − β1)Λ v.
    before = weight.detach().clone().numpy()
    weight.grad = torch.from_numpy(g)
    sgd.step()
    np.testing.assert_allclose(weight.detach().numpy(), before - (1 - BETA1) * corrected[-1] * g, rtol=1e-12)


def test_switch_at_forces_the_switch_and_schedulers_follow_the_new_optimizer() -> None:
    model = mlp()
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(adam, lambda step: 1.0 / (1 + step))
    swats = SWATS(switch_at="1ep")
    from composer_swa import Trainer

    trainer = Trainer(model, make_loader(), "2ep", optimizers=adam, schedulers=scheduler, algorithms=[swats],
                      step_schedulers_every_batch=True, **quiet())  # fmt: skip
    trainer.fit()
    sgd = trainer.state.optimizers[0]
    assert isinstance(sgd, torch.optim.SGD) and swats.switched_at_batch == 4
    assert scheduler.optimizer is sgd
    # At the switch (batch 4) the SGD LR was estimate * (1 - beta1); 4 scheduler steps later it has the schedule's shape.
    switch_lr = swats.estimates[0].sgd_lrs[0]
    assert sgd.param_groups[0]["lr"] == pytest.approx(switch_lr * (1 + 4) / (1 + 8))


def test_resume_after_the_switch_rebuilds_sgd_and_continues_exactly() -> None:
    def run(**kwargs: Any) -> tuple[torch.Tensor, dict[str, Any] | None]:
        model = mlp()
        adam = torch.optim.Adam(model.parameters(), lr=1e-2)
        return train_plain_loop(model, adam, [SWATS(switch_at="5ba")], **kwargs)

    uninterrupted, _ = run()
    _, saved = run(stop_at=8)
    assert saved is not None and saved["algorithms"]["SWATS"]["switched_at_batch"] == 5
    resumed, _ = run(saved=saved)
    assert torch.equal(resumed, uninterrupted)


def test_requires_an_adam_optimizer() -> None:
    model = mlp()
    state = State(model=model, max_duration="1ep", train_dataloader=list(make_loader()),
                  optimizers=[torch.optim.SGD(model.parameters(), lr=0.1)], algorithms=[SWATS()])  # fmt: skip
    with pytest.raises(ValueError, match=r"SWATS switches Adam or AdamW to SGD, but the run's optimizers are \['SGD'\]"):
        Engine(state, Logger()).run_event(Event.FIT_START)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"switch_tolerance": 0}, "switch_tolerance must be a number > 0, got 0"),
        ({"switch_at": "0ba"}, "switch_at must be after the start of the run"),
        ({"switch_at": "1.5dur"}, "switch_at must be after the start of the run and within it, got '1.5dur'"),
        ({"switch_at": "later"}, "switch_at"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SWATS(**kwargs)


def forced_switch(swats: SWATS, gradients: list[np.ndarray]) -> tuple[torch.optim.Optimizer, list[str]]:
    """Adam steps on the given gradients, then SWATS's forced switch (``switch_at``) at the next batch."""
    weight = torch.nn.Parameter(torch.zeros(len(gradients[0]), dtype=torch.float64))
    state, engine = watched(swats, weight, torch.optim.Adam([weight], lr=LR, betas=(BETA1, BETA2), eps=EPS))
    messages: list[str] = []
    engine.logger.log_message = lambda message, step: messages.append(message)  # type: ignore[method-assign]
    for g in gradients:
        weight.grad = torch.from_numpy(g)
        state.optimizers[0].step()
        state.timestamp.advance_batch(1, 0)
    engine.run_event(Event.BATCH_START)
    return state.optimizers[0], messages


def test_an_absurd_estimate_is_capped_at_max_lr_ratio_times_adams_lr_with_a_warning() -> None:
    # The second gradient is nearly orthogonal to Adam's step, so γ_2 = |p|² / -p·g explodes.
    gradients = [np.array([1.0, 0.0]), np.array([0.0, 1e-6])]
    _, corrected = adam_reference(gradients)
    assert (1 - BETA1) * corrected[-1] > 1000 * LR  # the unguarded switch would take SGD(lr > 10)

    with pytest.warns(UserWarning, match=r"more than max_lr_ratio=1000 times Adam's 0\.01; capped at 10"):
        sgd, messages = forced_switch(SWATS(switch_at="2ba"), gradients)

    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["lr"] == pytest.approx(1000 * LR)
    assert any("capped at 10" in message for message in messages)


def test_max_lr_ratio_sets_the_cap() -> None:
    gradients = [np.array([1.0, 0.0]), np.array([0.0, 1e-4])]
    _, corrected = adam_reference(gradients)
    assert 10 * LR < (1 - BETA1) * corrected[-1] < 1000 * LR

    sgd, _ = forced_switch(SWATS(switch_at="2ba"), gradients)  # within the default cap: the estimate as is
    assert sgd.param_groups[0]["lr"] == pytest.approx((1 - BETA1) * corrected[-1], rel=1e-12)
    with pytest.warns(UserWarning, match="capped at 0.1"):
        sgd, _ = forced_switch(SWATS(switch_at="2ba", max_lr_ratio=10), gradients)
    assert sgd.param_groups[0]["lr"] == pytest.approx(10 * LR)


def test_non_finite_steps_are_left_out_and_an_unusable_estimate_keeps_adam() -> None:
    nan = np.array([float("nan"), 1.0])
    swats = SWATS(switch_at="2ba")
    with pytest.warns(UserWarning, match=r"estimated for optimizer 0 is 0\.0; it stays Adam"):
        optimizer, messages = forced_switch(swats, [nan, nan])

    assert isinstance(optimizer, torch.optim.Adam) and swats.estimates[0].steps == 0
    assert any("it stays Adam" in message for message in messages)


def test_an_mlp_switched_at_adam_lr_0_01_no_longer_trains_to_nan() -> None:
    # The run: without the guard SWATS switched to SGD(lr=1.0e4) here and every weight became NaN.
    from torch.utils.data import DataLoader

    from composer_swa import Trainer
    from composer_swa.data.synthetic import synthetic_classification
    from composer_swa.models.mlp import MLP

    torch.manual_seed(0)
    data = DataLoader(synthetic_classification(samples=1024, features=16, classes=4), batch_size=64, shuffle=True)
    model = MLP(16, 4)
    swats = SWATS(switch_at="0.75dur")  # batch 48, as "0.3dur" of the 10 epochs; 16 batches of SGD after
    trainer = Trainer(model, data, "4ep", optimizers=torch.optim.Adam(model.parameters(), lr=0.01), algorithms=[swats],
                      **quiet())  # fmt: skip
    with pytest.warns(UserWarning, match="capped at 10"):
        trainer.fit()

    assert swats.estimates[0].sgd_lrs == [pytest.approx(10.0)]
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())
