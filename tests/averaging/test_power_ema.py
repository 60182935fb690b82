"""Power-function EMA (EDM2): the σ_rel ↔ γ relation, the profiles' inner products, and post-hoc reconstruction.

Every check compares with something computed another way: the relation plugged back in, the inner
products integrated numerically, and reconstructed averages against EMAs run step by step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest

from composer_swa.averaging.power_ema import (
    MAX_SIGMA_REL,
    decay,
    gamma_to_sigma_rel,
    half_life_to_sigma_rel,
    profile_inner_product,
    sigma_rel_to_gamma,
    sigma_rel_to_half_life,
    solve_weights,
)

#: Measured on the synthetic trajectory below (4000 steps, snapshots every 100, σ_rel 0.05 and 0.10
#: tracked): 4.8e-5 (σ_rel 0.07) and 5.6e-5 (σ_rel 0.13) of the distance between the two tracked
#: EMAs, with profile residuals 6.3e-4 and 8.6e-4. The bound leaves room for another random walk.
RECONSTRUCTION_TOLERANCE = 5e-4


def profile(tau: np.ndarray, t: float, gamma: float) -> np.ndarray:
    """The power profile evaluated pointwise, straight from its definition (as (γ+1)/t · (τ/t)^γ, which does not overflow)."""
    return np.where(tau <= t, (gamma + 1.0) / t * (tau / t) ** gamma, 0.0)


def integrate(function: Callable[[np.ndarray], np.ndarray], end: float, start: float = 0.0) -> float:
    """Gauss-Legendre on [start, end] cut into 16 pieces per interval, on intervals halving towards 0
    from ``end`` (1000 of them when ``start`` is 0, where τ^γ may blow up for γ < 0)."""
    nodes, weights = np.polynomial.legendre.leggauss(40)
    halving = np.concatenate([[0.0], end * 2.0 ** -np.arange(1000.0)[::-1]])
    coarse = halving if start == 0.0 else np.array([start, end])
    edges = np.concatenate([np.linspace(a, b, 17)[:-1] for a, b in itertools.pairwise(coarse)] + [[end]])
    left, right = edges[:-1, None], edges[1:, None]
    tau = (right - left) / 2.0 * nodes + (right + left) / 2.0
    return float(((right - left)[:, 0] / 2.0) @ (function(tau) @ weights))


@pytest.mark.parametrize("sigma_rel", [0.001, 0.01, 0.05, 0.0732, 0.10, 0.2, 0.288, 0.3, MAX_SIGMA_REL])
def test_gamma_satisfies_the_relation_and_is_the_largest_root(sigma_rel: float) -> None:
    gamma = sigma_rel_to_gamma(sigma_rel)
    plugged = math.sqrt((gamma + 1.0) / ((gamma + 2.0) ** 2 * (gamma + 3.0)))
    assert plugged == pytest.approx(sigma_rel, rel=1e-12, abs=1e-12 if sigma_rel < MAX_SIGMA_REL else 1e-8)
    # The largest root lies on the branch where σ_rel falls as γ grows; any larger γ is shorter.
    larger = np.linspace(gamma + 1e-3, gamma + 100.0, 2000)
    assert np.all(np.sqrt((larger + 1) / ((larger + 2) ** 2 * (larger + 3))) < sigma_rel)
    assert gamma_to_sigma_rel(gamma) == pytest.approx(sigma_rel, rel=1e-8)


def test_edm2_defaults_and_the_longest_profile() -> None:
    assert round(sigma_rel_to_gamma(0.05), 2) == 16.97  # the paper's figures
    assert round(sigma_rel_to_gamma(0.10), 2) == 6.94
    grid = np.linspace(-0.999, 5.0, 600_001)
    longest = np.sqrt((grid + 1) / ((grid + 2) ** 2 * (grid + 3))).max()
    assert longest == pytest.approx(MAX_SIGMA_REL, rel=1e-10)
    with pytest.raises(ValueError, match="sigma_rel must lie in"):
        sigma_rel_to_gamma(MAX_SIGMA_REL * 1.001)
    with pytest.raises(ValueError, match="sigma_rel must lie in"):
        sigma_rel_to_gamma(0.0)


def test_sigma_rel_is_the_profiles_relative_standard_deviation() -> None:
    def moment(power: int, t: float, gamma: float) -> float:
        return integrate(lambda tau: tau**power * profile(tau, t, gamma), t)

    t = 7.0
    for sigma_rel in (0.05, 0.1, 0.25):
        gamma = sigma_rel_to_gamma(sigma_rel)
        assert moment(0, t, gamma) == pytest.approx(1.0, rel=1e-12)
        assert math.sqrt(moment(2, t, gamma) - moment(1, t, gamma) ** 2) / t == pytest.approx(sigma_rel, rel=1e-9)


@pytest.mark.parametrize(
    ("t_a", "gamma_a", "t_b", "gamma_b"),
    [(1.0, 0.0, 1.0, 0.0), (100.0, 16.97, 60.0, 6.94), (3.0, 6.94, 50.0, 16.97), (20.0, -0.3, 8.0, 2.5),
     (10.0, -0.38, 10.0, -0.38), (5e4, 120.0, 4.9e4, 119.0), (1.0, 0.5, 1e6, 0.5)],
)  # fmt: skip
def test_inner_product_matches_numerical_integration(t_a: float, gamma_a: float, t_b: float, gamma_b: float) -> None:
    numeric = integrate(lambda tau: profile(tau, t_a, gamma_a) * profile(tau, t_b, gamma_b), min(t_a, t_b))
    closed = float(profile_inner_product(t_a, gamma_a, t_b, gamma_b))
    assert closed == pytest.approx(numeric, rel=1e-10)
    assert float(profile_inner_product(t_b, gamma_b, t_a, gamma_a)) == pytest.approx(closed, rel=1e-14)


def test_decay_gives_the_profile_integrated_over_each_step() -> None:
    gamma, steps = sigma_rel_to_gamma(0.08), 300
    ema = np.zeros(steps)  # the weight each step's value holds in the EMA, run step by step on unit vectors
    for t in range(1, steps + 1):
        ema *= decay(t, gamma)
        ema[t - 1] += 1.0 - decay(t, gamma)
    s = np.arange(1, steps + 1, dtype=np.float64)
    exact = [integrate(lambda tau: profile(tau, steps, gamma), k, k - 1.0) for k in (1, 2, 3, 150, 299, 300)]
    np.testing.assert_allclose(ema[[0, 1, 2, 149, 298, 299]], exact, rtol=1e-9, atol=0)  # ∫_{s-1}^{s} p, numerically
    np.testing.assert_allclose(ema, (s ** (gamma + 1) - (s - 1) ** (gamma + 1)) / steps ** (gamma + 1), rtol=1e-9)


def test_half_life_convention_round_trips() -> None:
    assert sigma_rel_to_half_life(0.05, 10_000) == pytest.approx(math.log(2) * 500)
    assert half_life_to_sigma_rel(sigma_rel_to_half_life(0.123, 777), 777) == pytest.approx(0.123, rel=1e-14)


def test_a_tracked_profile_reconstructs_as_itself() -> None:
    gammas = [sigma_rel_to_gamma(0.05), sigma_rel_to_gamma(0.10)]
    times = np.tile(np.arange(100.0, 5001.0, 100.0), 2)
    snapshot_gammas = np.repeat(gammas, len(times) // 2)
    for index in (49, 99, 20):  # each EMA's last snapshot, and an earlier one read at its own step
        fit = solve_weights(times, snapshot_gammas, times[index], snapshot_gammas[index])
        expected = np.zeros(len(times))
        expected[index] = 1.0
        np.testing.assert_allclose(fit.weights, expected, rtol=0, atol=1e-11)
        assert fit.residual < 1e-7  # computed from inner products: zero up to their rounding


def power_emas(trajectory: np.ndarray, gammas: list[float], every: int) -> tuple[list[int], dict[float, list[np.ndarray]]]:
    """Each γ's EMA run step by step with β(t), and its value every ``every`` steps."""
    averages = {gamma: np.zeros(trajectory.shape[1]) for gamma in gammas}
    snapshots: dict[float, list[np.ndarray]] = {gamma: [] for gamma in gammas}
    steps = []
    for t, weights in enumerate(trajectory, start=1):
        for gamma, average in averages.items():
            average += (1.0 - decay(t, gamma)) * (weights - average)
        if t % every == 0:
            steps.append(t)
            for gamma in gammas:
                snapshots[gamma].append(averages[gamma].copy())
    return steps, snapshots


@pytest.mark.parametrize("sigma_rel", [0.07, 0.13])
def test_an_untracked_profile_reconstructs_from_snapshots_of_a_random_walk(sigma_rel: float) -> None:
    rng = np.random.default_rng(0)
    trajectory = np.cumsum(rng.normal(size=(4000, 64)), axis=0)
    tracked, target = [sigma_rel_to_gamma(0.05), sigma_rel_to_gamma(0.10)], sigma_rel_to_gamma(sigma_rel)
    steps, snapshots = power_emas(trajectory, [*tracked, target], every=100)
    times = np.array(steps * 2, dtype=np.float64)
    fit = solve_weights(times, np.repeat(tracked, len(steps)), steps[-1], target)
    stacked = np.stack(snapshots[tracked[0]] + snapshots[tracked[1]])
    reconstructed, direct = fit.weights @ stacked, snapshots[target][-1]
    gap = np.linalg.norm(snapshots[tracked[0]][-1] - snapshots[tracked[1]][-1])
    error = np.linalg.norm(reconstructed - direct) / gap
    print(f"sigma_rel {sigma_rel}: residual {fit.residual:.2e}, error {error:.2e} of the tracked EMAs' gap")
    assert error < RECONSTRUCTION_TOLERANCE
    assert fit.weights.sum() == pytest.approx(1.0, abs=1e-3)
    # The profile's error bounds the average's: |Σ (p_r − Σ wᵢpᵢ) θ| ≤ residual ‖p_r‖ ‖θ‖ per coordinate.
    norm = math.sqrt(float(profile_inner_product(steps[-1], target, steps[-1], target)))
    bound = fit.residual * norm * np.sqrt((trajectory**2).sum(axis=0))
    assert np.all(np.abs(reconstructed - direct) <= bound * (1 + 1e-6) + 1e-9)
