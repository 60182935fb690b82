"""Each scheduler against the formula on Composer's schedulers page, recomputed in NumPy.

The run: 8 epochs of 25 batches (200 batches). Time arguments in ``ep``, ``ba`` and ``dur`` resolve
as Composer documents: an epoch is 25 batches, ``dur`` rounds down in max_duration's unit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from composer_swa.optim import (
    ComposerScheduler,
    ConstantScheduler,
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

PER_EPOCH, EPOCHS = 25, 8
TOTAL = PER_EPOCH * EPOCHS
T = np.arange(TOTAL + 1, dtype=np.float64)  # every batch count of the run


def cosine(tau: np.ndarray, alpha_f: float) -> np.ndarray:
    return alpha_f + (1 - alpha_f) * 0.5 * (1 + np.cos(np.pi * np.clip(tau, 0, 1)))


def with_warmup(warmup: float, peak: float, after: np.ndarray) -> np.ndarray:
    return np.where(warmup > T, peak * T / warmup, after)


def restarts(t_0: float, t_mult: float, alpha_f: float) -> np.ndarray:
    out = []
    for t in T:
        start, length = 0.0, t_0
        while start + length <= t:
            start, length = start + length, np.floor(length * t_mult)
        out.append(cosine(np.array((t - start) / length), alpha_f))
    return np.array(out, dtype=np.float64)


W_EP, W_DUR = 2 * PER_EPOCH, np.floor(0.15 * TOTAL)  # t_warmup="2ep" is 50 batches; "0.15dur" is 30
CASES: list[tuple[ComposerScheduler, Callable[[], np.ndarray]]] = [
    (StepScheduler(step_size="1ep", gamma=0.5), lambda: 0.5 ** np.floor(T / PER_EPOCH)),
    (StepScheduler(step_size="0.3dur"), lambda: 0.1 ** np.floor(T / 60)),
    (
        MultiStepScheduler(milestones=["0.3dur", "0.5dur", "7ep"], gamma=0.2),
        lambda: 0.2 ** ((T >= 60).astype(float) + (T >= 100) + (T >= 175)),
    ),
    (ConstantScheduler(alpha=0.3, t_max="3ep"), lambda: np.where(T < 75, 0.3, 1.0)),
    (LinearScheduler(), lambda: 1 - T / TOTAL),
    (LinearScheduler(alpha_i=0.2, alpha_f=1.0, t_max="80ba"), lambda: 0.2 + 0.8 * np.minimum(T / 80, 1)),
    (ExponentialScheduler(gamma=0.7), lambda: 0.7 ** (T / PER_EPOCH)),
    (ExponentialScheduler(gamma=0.5, decay_period="0.1dur"), lambda: 0.5 ** (T / 20)),
    (CosineAnnealingScheduler(), lambda: cosine(T / TOTAL, 0.0)),
    (CosineAnnealingScheduler(t_max="4ep", alpha_f=0.2), lambda: cosine(T / 100, 0.2)),
    (CosineAnnealingWarmRestartsScheduler(t_0="1ep", t_mult=2.0), lambda: restarts(PER_EPOCH, 2.0, 0.0)),
    (CosineAnnealingWarmRestartsScheduler(t_0="0.2dur", alpha_f=0.1), lambda: restarts(40, 1.0, 0.1)),
    (PolynomialScheduler(power=3.0), lambda: (1 - T / TOTAL) ** 3),
    (PolynomialScheduler(power=0.5, t_max="5ep", alpha_f=0.1), lambda: 0.1 + 0.9 * (1 - np.minimum(T / 125, 1)) ** 0.5),
    (
        CosineAnnealingWithWarmupScheduler(t_warmup="2ep"),
        lambda: with_warmup(W_EP, 1.0, cosine((T - W_EP) / (TOTAL - W_EP), 0.0)),
    ),
    (
        CosineAnnealingWithWarmupScheduler(t_warmup="0.15dur", alpha_f=0.1),
        lambda: with_warmup(W_DUR, 1.0, cosine((T - W_DUR) / (TOTAL - W_DUR), 0.1)),
    ),
    (
        LinearWithWarmupScheduler(t_warmup="2ep", alpha_i=2.0, alpha_f=0.5),
        lambda: with_warmup(W_EP, 2.0, 2.0 - 1.5 * np.clip((T - W_EP) / (TOTAL - W_EP), 0, 1)),
    ),
    (ConstantWithWarmupScheduler(t_warmup="0.15dur", alpha=0.5), lambda: with_warmup(W_DUR, 0.5, np.full_like(T, 0.5))),
    (
        PolynomialWithWarmupScheduler(t_warmup="2ep", power=2.0, alpha_f=0.05),
        lambda: with_warmup(W_EP, 1.0, 0.05 + 0.95 * (1 - (T - W_EP) / (TOTAL - W_EP)) ** 2),
    ),
    (
        MultiStepWithWarmupScheduler(t_warmup="0.15dur", milestones=["4ep", "0.9dur"], gamma=0.5),
        lambda: with_warmup(W_DUR, 1.0, 0.5 ** ((T >= 100).astype(float) + (T >= 180))),
    ),
]


@pytest.mark.parametrize(("scheduler", "formula"), CASES, ids=[f"{i}-{type(case[0]).__name__}" for i, case in enumerate(CASES)])
def test_every_batch_of_the_run_follows_the_formula(scheduler: ComposerScheduler, formula: Callable[[], np.ndarray]) -> None:
    ours = np.array([scheduler(example_state(int(t), f"{EPOCHS}ep", PER_EPOCH)) for t in T])
    np.testing.assert_allclose(ours, formula(), rtol=1e-12, atol=1e-12)


def test_a_dur_time_rounds_down_in_max_durations_unit_exactly() -> None:
    """Composer's rule (floor in max_duration's unit), computed exactly: 0.29 of 100 batches is 29, not 28.999... -> 28."""
    scheduler = MultiStepScheduler(milestones=["0.29dur"])
    assert [scheduler(example_state(b, "100ba")) for b in (28, 29)] == [1.0, pytest.approx(0.1)]
    assert [scheduler(example_state(b, "1ep", batches_per_epoch=7)) for b in (1, 2)] == [1.0, pytest.approx(0.1)]  # floor(2.03)


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        (CosineAnnealingWithWarmupScheduler(t_warmup="100sp"), "t_warmup and t_max must use the same units"),
        (LinearWithWarmupScheduler(t_warmup="1ep", t_max="5ep"), "must be greater than or equal to max_duration"),
        (PolynomialWithWarmupScheduler(t_warmup="10ba", t_max="0.5dur"), "must be greater than or equal to max_duration"),
    ],
)
def test_composers_warmup_checks_fail_at_the_first_step(scheduler: ComposerScheduler, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scheduler(example_state(0, f"{EPOCHS}ep", PER_EPOCH))


def test_a_zero_warmup_warns_as_composer_does() -> None:
    with pytest.warns(UserWarning, match="is 0"):
        assert CosineAnnealingWithWarmupScheduler(t_warmup="0.001dur")(example_state(0, "100ba")) == 1.0


def test_bad_time_arguments_fail_when_the_scheduler_is_built() -> None:
    with pytest.raises(ValueError, match=r"t_warmup: invalid time string '1 epoch'"):
        CosineAnnealingWithWarmupScheduler(t_warmup="1 epoch")
    with pytest.raises(TypeError, match=r"milestones must be a list"):
        MultiStepScheduler(milestones="0.5dur")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'iter'"):
        StepScheduler(step_size="3iter")
