"""Shared timing helper: alternate the contenders, repeat, and report medians (machines here are noisy)."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def alternate(
    contenders: dict[str, Callable[[], object]],
    repeats: int,
    prepared: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds per call of each contender over ``repeats`` rounds, after one warm-up call each.

    Rounds alternate the order (A B, then B A, ...) so that neither contender always runs right after
    the other: caches and CPU frequency then favour neither. With ``prepared``, each contender is a
    set-up that returns the function to time (building the model and data stays out of the figure).
    ``clock=time.process_time`` counts CPU time, which waiting for a core on a busy machine does not inflate.
    """

    def timed(setup: Callable[[], object]) -> float:
        run = setup() if prepared else setup
        assert callable(run)
        start = clock()
        run()
        return clock() - start

    for setup in contenders.values():
        timed(setup)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            samples[name].append(timed(contenders[name]))
    return samples


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The median of per-round ratios: each round's two runs share the machine's state at that moment."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def spread(numerator: list[float], denominator: list[float]) -> str:
    """The per-round ratios' range and quartiles, ``min [q1-q3] max``: how far to trust the median."""
    ratios = sorted(a / b for a, b in zip(numerator, denominator))
    if len(ratios) < 2:
        return f"{ratios[0]:.3f}"
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"{ratios[0]:.3f} [{q1:.3f}-{q3:.3f}] {ratios[-1]:.3f}"


def add_clock_option(parser: argparse.ArgumentParser) -> None:
    """``--clock wall|cpu``: wall time (what users feel) or CPU time (steadier on a shared machine)."""
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall (default) or cpu time of this process")
