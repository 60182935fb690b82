"""Composer's own expectations for its schedulers (composer/tests/optim/test_scheduler.py), run against ours.

The run is 1000 epochs of 1000 batches, shortened by the scale schedule ratio as Composer's test does
(``max_duration = int(1000 * ssr)`` epochs); each row gives times and the multipliers Composer expects.
"""

from __future__ import annotations

import pytest

from composer_swa.optim import (
    ComposerScheduler,
    ConstantWithWarmupScheduler,
    CosineAnnealingScheduler,
    CosineAnnealingWarmRestartsScheduler,
    CosineAnnealingWithWarmupScheduler,
    ExponentialScheduler,
    LinearScheduler,
    LinearWithWarmupScheduler,
    MultiStepScheduler,
    MultiStepWithWarmupScheduler,
    PolynomialScheduler,
    PolynomialWithWarmupScheduler,
    StepScheduler,
)
from composer_swa.optim.base import example_state
from composer_swa.time import Time, TimeUnit

STEPS_PER_EPOCH = 1000

ROWS = [
    (StepScheduler(step_size="10ba"), 1.0, ["5ba", "15ba", "35ba"], [1.0, 0.1, 0.001]),
    (StepScheduler(step_size="0.002dur", gamma=0.8), 1.0, ["1000ba", "3000ba", "7000ba"], [1.0, 0.8, 0.512]),
    (StepScheduler(step_size="1ep", gamma=0.5), 1.0, ["500ba", "1500ba", "3500ba"], [1.0, 0.5, 0.125]),
    (StepScheduler(step_size="10ba", gamma=0.5), 0.5, ["3ba", "8ba", "18ba"], [1.0, 0.5, 0.125]),
    (MultiStepScheduler(milestones=["10ba", "30ba", "70ba"]), 1.0, ["5ba", "20ba", "50ba", "100ba"], [1.0, 0.1, 0.01, 0.001]),
    (
        MultiStepScheduler(milestones=["100ba", "1ep", "0.01dur"], gamma=0.5),
        1.0,
        ["50ba", "500ba", "5000ba", "50000ba"],
        [1.0, 0.5, 0.25, 0.125],
    ),
    (
        MultiStepScheduler(milestones=["100ba", "1ep", "0.01dur"], gamma=0.5),
        4.0,
        ["200ba", "2000ba", "20000ba", "200000ba"],
        [1.0, 0.5, 0.25, 0.125],
    ),
    (LinearScheduler(), 1.0, ["100000ba", "200000ba", "400000ba"], [0.9, 0.8, 0.6]),
    (LinearScheduler(alpha_i=0.0, alpha_f=2.0), 1.0, ["100000ba", "200000ba", "400000ba"], [0.2, 0.4, 0.8]),
    (LinearScheduler(alpha_i=0.0, alpha_f=1.0, t_max="0.25dur"), 1.0, ["100000ba", "200000ba", "400000ba"], [0.4, 0.8, 1.0]),
    (LinearScheduler(alpha_i=0.0, alpha_f=1.0, t_max="0.25dur"), 2.0, ["100000ba", "200000ba", "400000ba"], [0.2, 0.4, 0.8]),
    (ExponentialScheduler(gamma=0.5), 1.0, ["1ep", "2ep", "4ep"], [0.5, 0.25, 0.0625]),
    (ExponentialScheduler(gamma=0.5), 2.0, ["2ep", "4ep", "8ep"], [0.5, 0.25, 0.0625]),
    (CosineAnnealingScheduler(), 1.0, ["0ba", "333333ba", "500000ba", "666667ba", "1000000ba"], [1.0, 0.75, 0.5, 0.25, 0.0]),
    (
        CosineAnnealingScheduler(t_max="30ba", alpha_f=0.5),
        1.0,
        ["0ba", "10ba", "15ba", "20ba", "30ba", "50ba"],
        [1.0, 0.875, 0.75, 0.625, 0.5, 0.5],
    ),
    (
        CosineAnnealingScheduler(t_max="30ba", alpha_f=0.5),
        0.2,
        ["0ba", "2ba", "3ba", "4ba", "6ba", "10ba"],
        [1.0, 0.875, 0.75, 0.625, 0.5, 0.5],
    ),
    (
        CosineAnnealingWarmRestartsScheduler(t_0="30ba"),
        1.0,
        ["0ba", "10ba", "15ba", "20ba", "30ba", "40ba"],
        [1.0, 0.75, 0.5, 0.25, 1.0, 0.75],
    ),
    (
        CosineAnnealingWarmRestartsScheduler(t_0="0.003dur", t_mult=1.5),
        1.0,
        ["0ba", "1000ba", "3000ba", "4500ba", "7500ba", "14250ba"],
        [1.0, 0.75, 1.0, 0.75, 1.0, 1.0],
    ),
    (
        CosineAnnealingWarmRestartsScheduler(t_0="30ep", t_mult=2.0, alpha_f=0.5),
        0.5,
        ["0ba", "5000ba", "15000ba", "25000ba"],
        [1.0, 0.875, 1.0, 0.875],
    ),
    (PolynomialScheduler(power=2.0), 1.0, ["0ba", "100000ba", "200000ba", "500000ba"], [1.0, 0.81, 0.64, 0.25]),
    (PolynomialScheduler(power=2.0, t_max="100ba", alpha_f=0.5), 1.0, ["0ba", "10ba", "20ba", "50ba"], [1.0, 0.905, 0.82, 0.625]),
    (PolynomialScheduler(power=2.0, t_max="100ba", alpha_f=0.5), 0.5, ["0ba", "10ba", "20ba", "50ba"], [1.0, 0.82, 0.68, 0.5]),
    (
        MultiStepWithWarmupScheduler(t_warmup="10ba", milestones=["20ba", "40ba"]),
        1.0,
        ["0ba", "5ba", "15ba", "25ba", "45ba"],
        [0.0, 0.5, 1.0, 0.1, 0.01],
    ),
    (
        MultiStepWithWarmupScheduler(t_warmup="10ba", milestones=["2ep", "4ep"], gamma=0.5),
        0.5,
        ["0ba", "5ba", "15ba", "1500ba", "2500ba"],
        [0.0, 0.5, 1.0, 0.5, 0.25],
    ),
    (
        MultiStepWithWarmupScheduler(t_warmup="10ba", milestones=["2ep", "4ep"], gamma=0.5, scale_warmup=True),
        0.5,
        ["0ba", "5ba", "15ba", "1500ba", "2500ba"],
        [0.0, 1.0, 1.0, 0.5, 0.25],
    ),
    (MultiStepWithWarmupScheduler(t_warmup="1000ep", milestones=[]), 1.0, ["0ep", "100ep", "1000ep"], [0.0, 0.1, 1.0]),
    (
        ConstantWithWarmupScheduler(t_warmup="500ep"),
        1.0,
        ["0ba", "250000ba", "500000ba", "750000ba", "1000000ba"],
        [0.0, 0.5, 1.0, 1.0, 1.0],
    ),
    (
        ConstantWithWarmupScheduler(t_warmup="500ep", alpha=3.0),
        1.0,
        ["0ba", "250000ba", "500000ba", "500500ba", "501000ba", "502000ba"],
        [0.0, 1.5, 3.0, 3.0, 3.0, 3.0],
    ),
    (ConstantWithWarmupScheduler(t_warmup="0.0005dur"), 1.0, ["0ba", "250ba", "500ba", "499750ba"], [0.0, 0.5, 1.0, 1.0]),
    (
        ConstantWithWarmupScheduler(t_warmup="500ep", alpha=3.0, t_max="501000ep"),
        0.5,
        ["0ba", "250000ba", "500000ba", "500500ba", "501000ba", "502000ba"],
        [0.0, 1.5, 3.0, 3.0, 3.0, 3.0],
    ),
    (ConstantWithWarmupScheduler(t_warmup="1000ep"), 1.0, ["0ep", "100ep", "1000ep"], [0.0, 0.1, 1.0]),
    (
        LinearWithWarmupScheduler(t_warmup="500ep"),
        1.0,
        ["0ba", "250000ba", "500000ba", "750000ba", "1000000ba"],
        [0.0, 0.5, 1.0, 0.5, 0.0],
    ),
    (
        LinearWithWarmupScheduler(t_warmup="500ep", alpha_i=3.0, alpha_f=2.0, t_max="1002ep"),
        0.5,
        ["0ba", "250000ba", "500000ba", "500500ba", "501000ba", "502000ba"],
        [0.0, 1.5, 3.0, 2.5, 2.0, 2.0],
    ),
    (LinearWithWarmupScheduler(t_warmup="0.0005dur"), 1.0, ["0ba", "250ba", "500ba", "499750ba"], [0.0, 0.5, 1.0, 0.5]),
    (
        LinearWithWarmupScheduler(t_warmup="500ba", scale_warmup=False),
        0.5,
        ["0ba", "250ba", "500ba", "249875ba"],
        [0.0, 0.5, 1.0, 0.5],
    ),
    (
        LinearWithWarmupScheduler(t_warmup="500ba", scale_warmup=True),
        0.5,
        ["0ba", "125ba", "250ba", "249875ba"],
        [0.0, 0.5, 1.0, 0.5],
    ),
    (LinearWithWarmupScheduler(t_warmup="1000ep"), 1.0, ["0ep", "100ep", "1000ep"], [0.0, 0.1, 1.0]),
    (
        CosineAnnealingWithWarmupScheduler(t_warmup="0.9dur"),
        1.0,
        ["0ba", "450000ba", "900000ba", "933333ba", "950000ba", "1000000ba"],
        [0.0, 0.5, 1.0, 0.75, 0.5, 0.0],
    ),
    (
        CosineAnnealingWithWarmupScheduler(t_warmup="0.9dur", alpha_f=0.5),
        0.01,
        ["0ba", "4500ba", "9000ba", "9333ba", "9500ba", "10000ba"],
        [0.0, 0.5, 1.0, 0.875, 0.75, 0.5],
    ),
    (
        CosineAnnealingWithWarmupScheduler(t_warmup="0.9dur", alpha_f=0.5, scale_warmup=True),
        0.01,
        ["0ba", "4500ba", "9000ba", "9333ba", "9500ba", "10000ba"],
        [0.0, 0.5, 1.0, 0.875, 0.75, 0.5],
    ),
    (CosineAnnealingWithWarmupScheduler(t_warmup="1000ep"), 1.0, ["0ep", "100ep", "1000ep"], [0.0, 0.1, 1.0]),
    (
        PolynomialWithWarmupScheduler(t_warmup="0.9dur"),
        1.0,
        ["0ba", "450000ba", "900000ba", "913397ba", "929289ba", "1000000ba"],
        [0.0, 0.5, 1.0, 0.75, 0.5, 0.0],
    ),
    (
        PolynomialWithWarmupScheduler(t_warmup="0.9dur", alpha_f=0.5),
        0.01,
        ["0ba", "4500ba", "9000ba", "9134ba", "9293ba", "10000ba"],
        [0.0, 0.5, 1.0, 0.875, 0.75, 0.5],
    ),
    (
        PolynomialWithWarmupScheduler(t_warmup="0.9dur", alpha_f=0.5, scale_warmup=True),
        0.01,
        ["0ba", "4500ba", "9000ba", "9134ba", "9293ba", "10000ba"],
        [0.0, 0.5, 1.0, 0.875, 0.75, 0.5],
    ),
    (PolynomialWithWarmupScheduler(t_warmup="1000ep"), 1.0, ["0ep", "100ep", "1000ep"], [0.0, 0.1, 1.0]),
]


@pytest.mark.parametrize(("scheduler", "ssr", "times", "expected"), ROWS)
def test_composers_expected_multipliers(
    scheduler: ComposerScheduler, ssr: float, times: list[str], expected: list[float]
) -> None:
    max_duration = f"{int(1000 * ssr)}ep"
    for text, alpha in zip(times, expected):
        time = Time.from_timestring(text)
        batch = time.value * STEPS_PER_EPOCH if time.unit is TimeUnit.EPOCH else time.value
        state = example_state(batch, max_duration, STEPS_PER_EPOCH)
        assert scheduler(state, ssr) == pytest.approx(alpha, abs=1e-3), text
