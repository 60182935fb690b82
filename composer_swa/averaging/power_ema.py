"""Power-function EMA profiles and their post-hoc combination, in NumPy alone.

Karras et al., "Analyzing and Improving the Training Dynamics of Diffusion Models" (CVPR 2024, the
EDM2 paper, https://arxiv.org/abs/2312.02696), average the weights with a power-function profile:
the average read at step ``t`` weighs the weights of time ``τ`` by

    p(τ; t, γ) = (γ + 1) τ^γ / t^(γ + 1)   for 0 < τ ≤ t   (and 0 after t),

which integrates to 1. Updated once per step, that is an EMA whose decay at step ``t`` (1, 2, ...)
is ``β(t) = (1 − 1/t)^(γ + 1)`` (:func:`decay`): the weights of step ``s`` then end up with exactly
``∫_{s−1}^{s} p(τ; t, γ) dτ``, the profile applied to the trajectory held constant over each step.
Its length is ``σ_rel``, the standard deviation of ``τ`` under the profile relative to ``t``:
``σ_rel² = (γ + 1) / ((γ + 2)² (γ + 3))`` (:func:`gamma_to_sigma_rel`, :func:`sigma_rel_to_gamma`).

Two profiles' L2 inner product has a closed form (:func:`profile_inner_product`), so the snapshots
of a few tracked EMAs, stored during training, combine into any other profile by least squares
(:func:`solve_weights`): that is post-hoc EMA. No torch here, so torch-free tools can use it.

Example:
    >>> gamma = sigma_rel_to_gamma(0.10)
    >>> round(gamma, 2), round(gamma_to_sigma_rel(gamma), 12)  # EDM2's longer default profile: γ = 6.94
    (6.94, 0.1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAX_SIGMA_REL",
    "Reconstruction",
    "decay",
    "gamma_to_sigma_rel",
    "half_life_to_sigma_rel",
    "profile_inner_product",
    "sigma_rel_to_gamma",
    "sigma_rel_to_half_life",
    "solve_weights",
]

_GOLDEN = (1.0 + math.sqrt(5.0)) / 2.0
#: ``γ`` at which ``σ_rel`` peaks: the root of ``γ² + 3γ + 1`` (where ``d log σ_rel² / dγ = 0``) above −1.
_GAMMA_AT_MAX = (math.sqrt(5.0) - 3.0) / 2.0
#: The longest profile: ``σ_rel`` at ``_GAMMA_AT_MAX``, where ``γ + 1, γ + 2, γ + 3`` are ``1/φ, φ, φ²``.
MAX_SIGMA_REL = _GOLDEN**-2.5


def gamma_to_sigma_rel(gamma: float) -> float:
    """``σ_rel`` of the power profile with exponent ``gamma`` (> −1): ``sqrt((γ+1) / ((γ+2)² (γ+3)))``.

    Example:
        >>> round(gamma_to_sigma_rel(0.0), 6)  # the uniform average of [0, t]: 1/sqrt(12)
        0.288675
    """
    if not gamma > -1.0:
        raise ValueError(f"gamma must be > -1, got {gamma!r}")
    return math.sqrt((gamma + 1.0) / ((gamma + 2.0) ** 2 * (gamma + 3.0)))


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """The exponent ``γ`` whose profile has length ``sigma_rel``, in ``(0, MAX_SIGMA_REL]``.

    Squared and multiplied out, the relation is the cubic
    ``γ³ + 7γ² + (16 − 1/σ²)γ + (12 − 1/σ²) = 0``; ``σ_rel`` rises from 0 at ``γ = −1`` to
    ``MAX_SIGMA_REL`` (about 0.3003) at ``γ = (√5 − 3)/2`` and falls back towards 0, so each length
    has two exponents. As in EDM2 this takes the largest real root: the profile that vanishes at
    ``τ = 0`` for every ``σ_rel`` below the uniform average's ``1/√12``. One Newton step polishes it.

    Example:
        >>> round(sigma_rel_to_gamma(0.05), 2)  # EDM2's shorter default profile: γ = 16.97
        16.97
    """
    if not 0.0 < sigma_rel <= MAX_SIGMA_REL:
        raise ValueError(f"sigma_rel must lie in (0, {MAX_SIGMA_REL:.4f}], got {sigma_rel!r}")
    inverse = 1.0 / sigma_rel**2
    roots = np.roots([1.0, 7.0, 16.0 - inverse, 12.0 - inverse])
    gamma = max(float(root.real) for root in roots)  # at MAX_SIGMA_REL a double root, maybe with a tiny imaginary part
    gamma = max(gamma, _GAMMA_AT_MAX)

    def excess(g: float) -> float:  # σ²(γ+2)²(γ+3) − (γ+1), zero at the answer
        return sigma_rel**2 * (g + 2.0) ** 2 * (g + 3.0) - (g + 1.0)

    slope = sigma_rel**2 * (g2 := gamma + 2.0) * (2.0 * (gamma + 3.0) + g2) - 1.0
    if slope > 0.0:  # zero at the double root: no step there
        gamma = max(gamma - excess(gamma) / slope, _GAMMA_AT_MAX)
    return gamma


def decay(t: int, gamma: float) -> float:
    """The EMA's decay at step ``t`` (1, 2, ...): ``β(t) = (1 − 1/t)^(γ+1)``; 0 at ``t = 1`` (a copy).

    Example:
        >>> decay(1, 6.94), round(decay(100, 6.94), 4)
        (0.0, 0.9233)
    """
    if t < 1:
        raise ValueError(f"the step t counts from 1, got {t!r}")
    return (1.0 - 1.0 / t) ** (gamma + 1.0)


def sigma_rel_to_half_life(sigma_rel: float, t: float) -> float:
    """The half-life, in steps, of the ordinary EMA as long as the power profile ``sigma_rel`` read at step ``t``.

    A power EMA has no fixed half-life: its length grows with ``t``. The convention here matches
    the spread of the weights' ages: an ordinary EMA with half-life ``h`` weighs an age ``a`` by
    ``exp(−a ln2 / h)``, whose standard deviation is ``h / ln 2`` (continuous time), and the power
    profile's is ``σ_rel · t``; so ``h = ln 2 · σ_rel · t``.

    Example:
        >>> round(sigma_rel_to_half_life(0.05, 10_000), 1)
        346.6
    """
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t!r}")
    return math.log(2.0) * sigma_rel * t


def half_life_to_sigma_rel(half_life: float, t: float) -> float:
    """The inverse of :func:`sigma_rel_to_half_life`: ``σ_rel = h / (t ln 2)`` at step ``t``.

    Example:
        >>> round(half_life_to_sigma_rel(346.57, 10_000), 4)
        0.05
    """
    if not t > 0 or not half_life > 0:
        raise ValueError(f"half_life and t must be > 0, got half_life={half_life!r} and t={t!r}")
    return half_life / (t * math.log(2.0))


def profile_inner_product(
    t_a: np.ndarray | float, gamma_a: np.ndarray | float, t_b: np.ndarray | float, gamma_b: np.ndarray | float
) -> np.ndarray:
    """``∫ p(τ; t_a, γ_a) p(τ; t_b, γ_b) dτ``, broadcast over arrays.

    The integrand lives on ``(0, m]`` with ``m = min(t_a, t_b)``, where it is
    ``(γ_a+1)(γ_b+1) τ^(γ_a+γ_b) / (t_a^(γ_a+1) t_b^(γ_b+1))``; so the integral is
    ``(γ_a+1)(γ_b+1) / (γ_a+γ_b+1) · (m/t_a)^(γ_a+1) (m/t_b)^(γ_b+1) / m``, written with
    ratios no larger than 1 so that large exponents neither overflow nor underflow early.
    It needs ``γ_a + γ_b > −1``.

    Example:
        >>> float(profile_inner_product(1.0, 0.0, 1.0, 0.0))  # the uniform density on [0, 1], squared
        1.0
    """
    t_a, gamma_a, t_b, gamma_b = (np.asarray(value, dtype=np.float64) for value in (t_a, gamma_a, t_b, gamma_b))
    if np.any(gamma_a + gamma_b <= -1.0):
        raise ValueError("the inner product needs gamma_a + gamma_b > -1")
    m = np.minimum(t_a, t_b)
    scale = (gamma_a + 1.0) * (gamma_b + 1.0) / (gamma_a + gamma_b + 1.0)
    return scale * (m / t_a) ** (gamma_a + 1.0) * (m / t_b) ** (gamma_b + 1.0) / m


@dataclass(frozen=True)
class Reconstruction:
    """The least-squares combination of stored profiles that best matches a target profile.

    Attributes:
        weights: One weight per stored snapshot, in the order given (they sum to about 1).
        residual: ``‖p_target − Σ wᵢ pᵢ‖ / ‖p_target‖`` in L2, the fit's relative error. It is
            computed from inner products, so values below about 1e-7 are at the level of rounding.
    """

    weights: np.ndarray
    residual: float


def solve_weights(
    times: Sequence[float] | np.ndarray,
    gammas: Sequence[float] | np.ndarray,
    target_time: float,
    target_gamma: float,
    rcond: float = 1e-13,
) -> Reconstruction:
    """The weights ``w`` minimizing ``‖p(·; t_r, γ_r) − Σ wᵢ p(·; tᵢ, γᵢ)‖`` over stored snapshots.

    The normal equations ``G w = b`` use the closed-form inner products (``Gᵢⱼ = ⟨pᵢ, pⱼ⟩``,
    ``bᵢ = ⟨pᵢ, p_r⟩``), with every time divided by ``target_time`` (inner products scale as
    ``1/t``, the weights do not). Snapshots of one EMA at nearby steps are nearly parallel, so
    ``G`` is ill conditioned: it is solved through its eigendecomposition, ignoring directions with
    eigenvalues below ``rcond`` times the largest (the minimum-norm least-squares solution).

    Args:
        times: The step ``tᵢ`` at which each snapshot was taken (≥ 1).
        gammas: Each snapshot's exponent ``γᵢ``.
        target_time: The step ``t_r`` of the wanted average (usually the last snapshot's).
        target_gamma: The wanted exponent ``γ_r`` (see :func:`sigma_rel_to_gamma`).
        rcond: Relative cutoff for the eigenvalues of ``G``.

    Example:
        >>> gammas = [sigma_rel_to_gamma(0.05)] * 2 + [sigma_rel_to_gamma(0.10)] * 2
        >>> fit = solve_weights([500, 1000, 500, 1000], gammas, 1000, gammas[3])
        >>> (np.round(fit.weights, 6) + 0.0).tolist(), fit.residual < 1e-6  # a tracked profile: itself
        ([0.0, 0.0, 0.0, 1.0], True)
    """
    t = np.asarray(times, dtype=np.float64) / float(target_time)
    g = np.asarray(gammas, dtype=np.float64)
    if t.ndim != 1 or t.shape != g.shape or t.size == 0:
        raise ValueError(f"times and gammas must be two equally long, non-empty lists, got {t.shape} and {g.shape}")
    if np.any(t <= 0) or not target_time > 0:
        raise ValueError("times must be > 0")
    if np.any(g <= _GAMMA_AT_MAX - 1e-12) or target_gamma <= _GAMMA_AT_MAX - 1e-12:
        raise ValueError(f"gammas must be >= {_GAMMA_AT_MAX:.4f} (the longest profile's)")
    gram = profile_inner_product(t[:, None], g[:, None], t[None, :], g[None, :])
    target = profile_inner_product(t, g, 1.0, target_gamma)
    values, vectors = np.linalg.eigh(gram)
    kept = values > rcond * values[-1]
    weights = vectors[:, kept] @ ((vectors[:, kept].T @ target) / values[kept])
    norm = float(profile_inner_product(1.0, target_gamma, 1.0, target_gamma))
    squared = norm - 2.0 * float(weights @ target) + float(weights @ gram @ weights)
    return Reconstruction(weights=weights, residual=math.sqrt(max(squared, 0.0) / norm))
