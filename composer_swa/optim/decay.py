"""Composer's schedulers without warm-up: step, multi-step, constant, linear, exponential, cosine, polynomial.

Each returns the LR multiplier ``alpha(t)`` of Composer's formula; ``t`` is ``state.timestamp`` in
the unit of the converted time argument (see :func:`~composer_swa.optim.base.convert_time`), and
``tau`` is the fraction of ``t_max`` elapsed, clipped to [0, 1].

In the examples, ``at(b)`` is a state ``b`` batches into a 100-batch run of 10 batches per epoch
(:func:`~composer_swa.optim.base.example_state`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from composer_swa.optim.base import ComposerScheduler, SchedulerState, convert_time, times_argument
from composer_swa.time import Time, as_time

__all__ = [
    "ConstantScheduler",
    "CosineAnnealingScheduler",
    "CosineAnnealingWarmRestartsScheduler",
    "ExponentialScheduler",
    "LinearScheduler",
    "MultiStepScheduler",
    "PolynomialScheduler",
    "StepScheduler",
]


def cosine_anneal(x: float, min_y: float = 0.0, max_y: float = 1.0) -> float:
    """The half cosine from ``max_y`` (x = 0) to ``min_y`` (x = 1); ``x`` is clipped to [0, 1]."""
    x = min(max(x, 0.0), 1.0)
    return min_y + (max_y - min_y) * (1 + math.cos(x * math.pi)) / 2


def fraction_elapsed(t_max: Time, state: SchedulerState) -> float:
    """``t / t_max`` in ``t_max``'s unit (not clipped)."""
    return (state.timestamp.get(t_max.unit) / t_max).value


class StepScheduler(ComposerScheduler):
    """``alpha(t) = gamma ** floor(t / step_size)`` (PyTorch's StepLR, in any time unit).

    Args:
        step_size: Time between decays.
        gamma: Multiplicative decay factor.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> StepScheduler(step_size="1ep", gamma=0.5)(at(25))
        0.25
    """

    def __init__(self, step_size: Time | str, gamma: float = 0.1) -> None:
        self.step_size = as_time(step_size, "step_size")
        self.gamma = gamma

    def __call__(self, state: SchedulerState, ssr: float = 1.0) -> float:
        step_size = convert_time(self.step_size, state, ssr)
        return float(self.gamma ** int(state.timestamp.get(step_size.unit) / step_size))


class MultiStepScheduler(ComposerScheduler):
    """``alpha(t) = gamma ** (number of milestones reached)`` (PyTorch's MultiStepLR, in any time unit).

    Args:
        milestones: Times at which the LR is multiplied by ``gamma``, e.g. ``["0.3dur", "0.5dur", "0.9dur"]``.
        gamma: Multiplicative decay factor.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> MultiStepScheduler(milestones=["0.3dur", "5ep"], gamma=0.1)(at(40))
        0.1
    """

    def __init__(self, milestones: Sequence[Time | str], gamma: float = 0.1) -> None:
        self.milestones = times_argument(milestones, "milestones")
        self.gamma = gamma

    def __call__(self, state: SchedulerState, ssr: float = 1.0) -> float:
        reached = sum(state.timestamp >= convert_time(milestone, state, ssr) for milestone in self.milestones)
        return float(self.gamma**reached)


class ConstantScheduler(ComposerScheduler):
    """``alpha(t) = alpha`` until ``t_max``, then 1.

    Args:
        alpha: The multiplier while the scheduler is active.
        t_max: How long it is active.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> ConstantScheduler(alpha=0.5, t_max="20ba")(at(19)), ConstantScheduler(alpha=0.5, t_max="20ba")(at(20))
        (0.5, 1.0)
    """

    def __init__(self, alpha: float = 1.0, t_max: Time | str = "1dur") -> None:
        self.alpha = alpha
        self.t_max = as_time(t_max, "t_max")

    def __call__(self, state: SchedulerState, ssr: float = 1.0) -> float:
        return self.alpha if state.timestamp < convert_time(self.t_max, state, ssr) else 1.0


class LinearScheduler(ComposerScheduler):
    """``alpha(t) = alpha_i + (alpha_f - alpha_i) * tau`` (by default from 1 down to 0 over the run).

    Args:
        alpha_i: The initial multiplier.
        alpha_f: The final multiplier.
        t_max: The duration of the ramp.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> LinearScheduler()(at(25))
        0.75
    """

    def __init__(self, alpha_i: float = 1.0, alpha_f: float = 0.0, t_max: Time | str = "1dur") -> None:
        self.alpha_i = alpha_i
        self.alpha_f = alpha_f
        self.t_max = as_time(t_max, "t_max")

    def __call__(self, state: SchedulerState, ssr: float = 1.0) -> float:
        tau = min(1.0, fraction_elapsed(convert_time(self.t_max, state, ssr), state))
        return self.alpha_i + tau * (self.alpha_f - self.alpha_i)


class ExponentialScheduler(ComposerScheduler):
    """``alpha(t) = gamma ** (t / decay_period)``.

    Args:
        gamma: Multiplicative decay per ``decay_period``.
        decay_period: The time over which the LR decays by ``gamma``.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> ExponentialScheduler(gamma=0.5)(at(20))
        0.25
    """

    def __init__(self, gamma: float, decay_period: Time | str = "1ep") -> None:
        self.gamma = gamma
        self.decay_period = as_time(decay_period, "decay_period")

    def __call__(self, state: SchedulerState, ssr: float = 1.0) -> float:
        return float(self.gamma ** fraction_elapsed(convert_time(self.decay_period, state, ssr), state))


class CosineAnnealingScheduler(ComposerScheduler):
    """``alpha(t) = alpha_f + (1 - alpha_f) * (1 + cos(pi * tau)) / 2``.

    Args:
        t_max: The duration of the decay.
        alpha_f: The final multiplier.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> CosineAnnealingScheduler()(at(50))
        0.5
    """

    def __init__(self, t_max: Time | str = "1dur", alpha_f: float = 0.0) -> None:
        self.t_max = as_time(t_max, "t_max")
        self.alpha_f = alpha_f

    def __call__(self, state: SchedulerState, ssr: float = 1.0) -> float:
        return cosine_anneal(fraction_elapsed(convert_time(self.t_max, state, ssr), state), min_y=self.alpha_f)


class CosineAnnealingWarmRestartsScheduler(ComposerScheduler):
    """Cosine annealing that restarts: cycles of ``t_0``, each ``t_mult`` times longer than the one before.

    ``alpha(t) = alpha_f + (1 - alpha_f) * (1 + cos(pi * tau_i)) / 2``, with ``tau_i`` the fraction of
    the current cycle elapsed (PyTorch's CosineAnnealingWarmRestarts, in any time unit).

    Args:
        t_0: The first cycle's length.
        t_mult: Each cycle's length over the previous one's.
        alpha_f: The multiplier at the end of each cycle.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> CosineAnnealingWarmRestartsScheduler(t_0="20ba")(at(30)), CosineAnnealingWarmRestartsScheduler(t_0="20ba")(at(40))
        (0.5, 1.0)
    """

    def __init__(self, t_0: Time | str, t_mult: float = 1.0, alpha_f: float = 0.0) -> None:
        self.t_0 = as_time(t_0, "t_0")
        self.t_mult = t_mult
        self.alpha_f = alpha_f

    def __call__(self, state: SchedulerState, ssr: float = 1.0) -> float:
        length = convert_time(self.t_0, state, ssr)
        end, now = length, state.timestamp.get(length.unit)
        while end <= now:
            if length.value == 0:
                raise ValueError(
                    f"the cycles of {type(self).__name__}(t_0={str(self.t_0)!r}, t_mult={self.t_mult!r}) shrank to 0"
                )
            length = length * self.t_mult  # rounded down, as Composer's int()
            end = end + length
        return cosine_anneal(((now - (end - length)) / length).value, min_y=self.alpha_f)


class PolynomialScheduler(ComposerScheduler):
    """``alpha(t) = alpha_f + (1 - alpha_f) * (1 - tau) ** power``.

    Args:
        power: The exponent.
        t_max: The duration of the decay.
        alpha_f: The final multiplier.

    Example:
        >>> from composer_swa.optim.base import example_state as at
        >>> PolynomialScheduler(power=2.0)(at(50))
        0.25
    """

    def __init__(self, power: float, t_max: Time | str = "1dur", alpha_f: float = 0.0) -> None:
        self.power = power
        self.t_max = as_time(t_max, "t_max")
        self.alpha_f = alpha_f

    def __call__(self, state: SchedulerState, ssr: float = 1.0) -> float:
        tau = min(1.0, fraction_elapsed(convert_time(self.t_max, state, ssr), state))
        return self.alpha_f + (1 - tau) ** self.power * (1.0 - self.alpha_f)
