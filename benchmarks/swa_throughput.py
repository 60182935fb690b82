"""Training throughput with SWA updating every batch, against the same run without SWA.

A medium MLP (256→1024→1024→10, ≈1.3M params, batch 128, CPU, one thread) trains 4 epochs over 8192
samples, once plain and once with ``SWA(update_interval="1ba")`` (default window 0.7dur→1.0dur, so
the final swap and statistics pass are included). Runs alternate; printed: median steps/s of each
and the median per-round ratio SWA/plain. Target (issue 3): >= 0.97.

    python -m benchmarks.swa_throughput [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmarks._timing import alternate, median_ratio
from composer_swa import SWA, Trainer

SAMPLES, BATCH, EPOCHS = 8192, 128, 4
STEPS = EPOCHS * SAMPLES // BATCH


def run(with_swa: bool) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)
    )
    data = TensorDataset(torch.randn(SAMPLES, 256), torch.randint(0, 10, (SAMPLES,)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    algorithms = [SWA(update_interval="1ba")] if with_swa else []
    loader = DataLoader(data, batch_size=BATCH, shuffle=True)
    Trainer(
        model, loader, f"{EPOCHS}ep", optimizers=optimizer, algorithms=algorithms, progress_bar=False, loggers=[], device="cpu"
    ).fit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    times = alternate({"plain": lambda: run(False), "swa": lambda: run(True)}, args.repeats)
    for name, seconds in times.items():
        print(f"{name:6s} {STEPS / statistics.median(seconds):8.1f} steps/s   (median of {args.repeats})")
    print(f"ratio swa/plain = {median_ratio(times['plain'], times['swa']):.3f} steps/s   (target >= 0.97)")


if __name__ == "__main__":
    main()
