"""Shared timing helper: alternate the contenders, repeat, and report medians (machines here are noisy)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def alternate(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each contender over ``repeats`` rounds, after one warm-up call each.

    Rounds alternate the order (A B, then B A, ...) so that neither contender always runs right after
    the other: caches and CPU frequency then favour neither.
    """
    for run in contenders.values():
        run()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            start = time.perf_counter()
            contenders[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The median of per-round ratios: each round's two runs share the machine's state at that moment."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))
