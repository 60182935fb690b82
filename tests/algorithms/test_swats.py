from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from composer_swa import SWATS, Engine, Event, State
from composer_swa.loggers import Logger
from tests.algorithms.helpers import quiet, train_plain_loop
from tests.conftest import make_loader, mlp

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
