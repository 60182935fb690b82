"""Training throughput with SWA updating every batch, against the same run without SWA.

A medium MLP (256→1024→1024→10, ≈1.3M params, batch 128, CPU, one thread) trains 4 epochs over 8192
samples, once plain and once with ``SWA(update_interval="1ba")`` (default window 0.7dur→1.0dur, so
the final swap and statistics pass are included). Only ``fit()`` is timed: model, data and Trainer
are built before the clock starts, fresh for every run. Runs alternate; printed: median steps/s of
each, the median per-round ratio SWA/plain and its spread. Target (issue 23): >= 0.97.
``--profile`` prints where the SWA run's time goes instead (cProfile, sorted by own time).

    python -m benchmarks.swa_throughput [--repeats 7] [--clock wall|cpu] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmarks._timing import CLOCKS, add_clock_option, alternate, median_ratio, spread
from composer_swa import SWA, Trainer

SAMPLES, BATCH, EPOCHS = 8192, 128, 4
STEPS = EPOCHS * SAMPLES // BATCH


def prepare(with_swa: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)
    )
    data = TensorDataset(torch.randn(SAMPLES, 256), torch.randint(0, 10, (SAMPLES,)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    algorithms = [SWA(update_interval="1ba")] if with_swa else []
    loader = DataLoader(data, batch_size=BATCH, shuffle=True)
    trainer = Trainer(
        model, loader, f"{EPOCHS}ep", optimizers=optimizer, algorithms=algorithms, progress_bar=False, loggers=[], device="cpu"
    )
    return trainer.fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    add_clock_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(prepare(True))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    times = alternate({"plain": lambda: prepare(False), "swa": lambda: prepare(True)}, args.repeats, True, CLOCKS[args.clock])
    for name, seconds in times.items():
        print(f"{name:6s} {STEPS / statistics.median(seconds):8.1f} steps/s   ({args.clock} time, median of {args.repeats})")
    print(f"ratio swa/plain = {median_ratio(times['plain'], times['swa']):.3f} steps/s   (target >= 0.97)")
    print(f"spread of the per-round ratios: {spread(times['plain'], times['swa'])}")


if __name__ == "__main__":
    main()
