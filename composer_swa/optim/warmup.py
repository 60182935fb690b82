"""Composer's schedulers with a linear warm-up: ``alpha(t) = t / t_warmup`` while ``t < t_warmup``, then a decay.

After the warm-up, ``tau_w = (t - t_warmup) / (t_max - t_warmup)``, clipped to [0, 1]: ``t_max``
counts from the start of the run, as Composer computes it. The warm-up is not stretched by the
scale schedule ratio unless ``scale_warmup=True``. ``t_warmup`` and ``t_max`` must resolve to one
unit, and ``t_max`` must reach ``max_duration`` where the two compare (Composer's checks).

In the examples, ``at(b)`` is a state ``b`` batches into a 100-batch run of 10 batches per epoch
(:func:`~composer_swa.optim.base.example_state`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from composer_swa.optim.base import (
    ComposerScheduler,
    SchedulerState,
    check_t_max_covers_run,
    check_warmup_units,
    convert_time,
)
from composer_swa.optim.decay import LinearScheduler, MultiStepScheduler, cosine_anneal
from composer_swa.time import Time, as_time

__all__ = [
    "ConstantWithWarmupScheduler",
    "CosineAnnealingWithWarmupScheduler",
    "LinearWithWarmupScheduler",
    "MultiStepWithWarmupScheduler",
    "PolynomialWithWarmupScheduler",
]


def _warming_up(t_warmup: Time, peak: float, scale_warmup: bool, state: SchedulerState, ssr: float) -> float | None:
    """The warm-up's multiplier (0 to ``peak``), or None once the warm-up is over."""
    converted = convert_time(t_warmup, state)
    if converted.value == 0:
        warnings.warn(
            f"the warm-up t_warmup={str(t_warmup)!r} is 0 {converted.unit.value}; a 'dur' warm-up is rounded "
            f"down in max_duration's unit",
            stacklevel=3,
        )
    if state.timestamp < converted:
        return LinearScheduler(alpha_i=0.0, alpha_f=peak, t_max=t_warmup)(state, ssr if scale_warmup else 1.0)
    return None


class _WithWarmup(ComposerScheduler):
    """Warm-up to ``peak``, then :meth:`decay` of the post-warm-up fraction ``tau_w``."""

    peak = 1.0

    def __init__(self, t_warmup: Time | str, t_max: Time | str, scale_warmup: bool) -> None:
        self.t_warmup = as_time(t_warmup, "t_warmup")
        self.t_max = as_time(t_max, "t_max")
        self.scale_warmup = scale_warmup

    def decay(self, tau: float) -> float:
        raise NotImplementedError

    def __call__(self, state: SchedulerState, ssr: float = 1.0) -> float:
        t_warmup, t_max = convert_time(self.t_warmup, state), convert_time(self.t_max, state, ssr)
        check_warmup_units(t_warmup, t_max)
        check_t_max_covers_run(t_max, state)
        warming = _warming_up(self.t_warmup, self.peak, self.scale_warmup, state, ssr)
        if warming is not None:
            return warming
        now = state.timestamp.get(t_warmup.unit)
        tau = min(1.0, ((now - t_warmup) / (t_max - t_warmup)).value) if t_max > t_warmup else 0.0
        return self.decay(tau)


class LinearWithWarmupScheduler(_WithWarmup):
    """Warm-up from 0 to ``alpha_i``, then ``alpha(t) = alpha_i + (alpha_f - alpha_i) * tau_w``.

    Args:
        t_warmup: The warm-up's length.
        alpha_i: The multiplier at the end of the warm-up.
        alpha_f: The final multiplier.
        t_max: When the ramp ends, counted from the start of the run.
        scale_warmup: Stretch the warm-up by the scale schedule ratio too.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> [LinearWithWarmupScheduler(t_warmup="1ep")(at(b)) for b in (5, 10, 55)]
        [0.5, 1.0, 0.5]
    """

    def __init__(
        self,
        t_warmup: Time | str,
        alpha_i: float = 1.0,
        alpha_f: float = 0.0,
        t_max: Time | str = "1dur",
        scale_warmup: bool = False,
    ) -> None:
        super().__init__(t_warmup, t_max, scale_warmup)
        self.alpha_i, self.alpha_f, self.peak = alpha_i, alpha_f, alpha_i

    def decay(self, tau: float) -> float:
        return self.alpha_i + tau * (self.alpha_f - self.alpha_i)


class ConstantWithWarmupScheduler(LinearWithWarmupScheduler):
    """Warm-up from 0 to ``alpha``, then ``alpha`` until ``t_max``.

    Args:
        t_warmup: The warm-up's length.
        alpha: The multiplier after the warm-up.
        t_max: The scheduler's duration.
        scale_warmup: Stretch the warm-up by the scale schedule ratio too.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> [ConstantWithWarmupScheduler(t_warmup="0.1dur")(at(b)) for b in (5, 10, 90)]
        [0.5, 1.0, 1.0]
    """

    def __init__(self, t_warmup: Time | str, alpha: float = 1.0, t_max: Time | str = "1dur", scale_warmup: bool = False) -> None:
        super().__init__(t_warmup, alpha_i=alpha, alpha_f=alpha, t_max=t_max, scale_warmup=scale_warmup)
        self.alpha = alpha


class CosineAnnealingWithWarmupScheduler(_WithWarmup):
    """Warm-up from 0 to 1, then ``alpha(t) = alpha_f + (1 - alpha_f) * (1 + cos(pi * tau_w)) / 2``.

    Args:
        t_warmup: The warm-up's length, e.g. ``"1ep"`` or ``"0.05dur"``.
        t_max: When the decay ends, counted from the start of the run.
        alpha_f: The final multiplier.
        scale_warmup: Stretch the warm-up by the scale schedule ratio too.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> [CosineAnnealingWithWarmupScheduler(t_warmup="1ep")(at(b)) for b in (0, 5, 10, 55, 100)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """

    def __init__(
        self, t_warmup: Time | str, t_max: Time | str = "1dur", alpha_f: float = 0.0, scale_warmup: bool = False
    ) -> None:
        super().__init__(t_warmup, t_max, scale_warmup)
        self.alpha_f = alpha_f

    def decay(self, tau: float) -> float:
        return cosine_anneal(tau, min_y=self.alpha_f)


class PolynomialWithWarmupScheduler(_WithWarmup):
    """Warm-up from 0 to 1, then ``alpha(t) = alpha_f + (1 - alpha_f) * (1 - tau_w) ** power``.

    Args:
        t_warmup: The warm-up's length.
        power: The exponent.
        t_max: When the decay ends, counted from the start of the run.
        alpha_f: The final multiplier.
        scale_warmup: Stretch the warm-up by the scale schedule ratio too.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> [PolynomialWithWarmupScheduler(t_warmup="10ba")(at(b)) for b in (5, 55)]
        [0.5, 0.25]
    """

    def __init__(
        self,
        t_warmup: Time | str,
        power: float = 2.0,
        t_max: Time | str = "1dur",
        alpha_f: float = 0.0,
        scale_warmup: bool = False,
    ) -> None:
        super().__init__(t_warmup, t_max, scale_warmup)
        self.power, self.alpha_f = power, alpha_f

    def decay(self, tau: float) -> float:
        return self.alpha_f + (1 - tau) ** self.power * (1.0 - self.alpha_f)


class MultiStepWithWarmupScheduler(ComposerScheduler):
    """Warm-up from 0 to 1, then ``alpha(t) = gamma ** (number of milestones reached)``.

    Milestones before the end of the warm-up act only once it is over.

    Args:
        t_warmup: The warm-up's length.
        milestones: Times at which the LR is multiplied by ``gamma``.
        gamma: Multiplicative decay factor.
        scale_warmup: Stretch the warm-up by the scale schedule ratio too.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> [MultiStepWithWarmupScheduler(t_warmup="10ba", milestones=["0.5dur"])(at(b)) for b in (5, 20, 60)]
        [0.5, 1.0, 0.1]
    """

    def __init__(
        self, t_warmup: Time | str, milestones: Sequence[Time | str], gamma: float = 0.1, scale_warmup: bool = False
    ) -> None:
        self.t_warmup = as_time(t_warmup, "t_warmup")
        self.step_scheduler = MultiStepScheduler(milestones=milestones, gamma=gamma)
        self.milestones, self.gamma, self.scale_warmup = self.step_scheduler.milestones, gamma, scale_warmup

    def __call__(self, state: SchedulerState, ssr: float = 1.0) -> float:
        warming = _warming_up(self.t_warmup, 1.0, self.scale_warmup, state, ssr)
        return warming if warming is not None else self.step_scheduler(state, ssr)
