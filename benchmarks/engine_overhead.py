"""Trainer overhead: the same tiny MLP trained by a plain PyTorch loop and by our Trainer (no algorithms).

Setup (issue 2): MLP 32→64→2, batch 32, CPU, one thread, 2 epochs over 8192 samples (512 steps).
Only the training is timed: ``fit()`` for the Trainer, the loop for plain PyTorch; the model, the
data and the Trainer are built before the clock starts, fresh for every run. Runs alternate; printed:
the medians, the median of per-round ratios Trainer/plain and their spread. Target: ratio >= 0.97.
``--profile`` prints where the Trainer's time goes instead (cProfile, sorted by own time).

    python -m benchmarks.engine_overhead [--repeats 15] [--clock wall|cpu] [--profile]
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
from composer_swa import Trainer

EPOCHS, SAMPLES, BATCH = 2, 8192, 32
STEPS = EPOCHS * SAMPLES // BATCH


def make_setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    data = TensorDataset(torch.randn(SAMPLES, 32), torch.randint(0, 2, (SAMPLES,)))
    return model, optimizer, DataLoader(data, batch_size=BATCH, shuffle=True)


def plain_loop() -> Callable[[], None]:
    model, optimizer, loader = make_setup()

    def train() -> None:
        for _ in range(EPOCHS):
            for x, y in loader:
                optimizer.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()

    return train


def trainer_loop() -> Callable[[], None]:
    model, optimizer, loader = make_setup()
    trainer = Trainer(model, loader, f"{EPOCHS}ep", optimizers=optimizer, progress_bar=False, loggers=[], device="cpu")
    return trainer.fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--profile", action="store_true")
    add_clock_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.profile:
        fit = trainer_loop()
        profiler = cProfile.Profile()
        profiler.runcall(fit)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    times = alternate({"plain": plain_loop, "trainer": trainer_loop}, args.repeats, prepared=True, clock=CLOCKS[args.clock])
    for name, seconds in times.items():
        print(f"{name:8s} {STEPS / statistics.median(seconds):8.0f} steps/s   ({args.clock} time, median of {args.repeats})")
    ratio = median_ratio(times["plain"], times["trainer"])
    print(f"ratio trainer/plain = {ratio:.3f} steps/s   (median of per-round ratios; target >= 0.97)")
    print(f"spread of the per-round ratios: {spread(times['plain'], times['trainer'])}")


if __name__ == "__main__":
    main()
