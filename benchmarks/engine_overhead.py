"""Trainer overhead: the same tiny MLP trained by a plain PyTorch loop and by our Trainer (no algorithms).

Setup (issue 2): MLP 32→64→2, batch 32, CPU, one thread, 2 epochs over 8192 samples. Runs alternate;
the medians and the ratio Trainer/plain are printed. Target: ratio >= 0.95.

    python benchmarks/engine_overhead.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmarks._timing import alternate, median_ratio
from composer_swa import Trainer

STEPS = 2 * 8192 // 32


def make_setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, DataLoader]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    data = TensorDataset(torch.randn(8192, 32), torch.randint(0, 2, (8192,)))
    return model, optimizer, DataLoader(data, batch_size=32, shuffle=True)


def plain_loop() -> None:
    model, optimizer, loader = make_setup()
    for _ in range(2):
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()


def trainer_loop() -> None:
    model, optimizer, loader = make_setup()
    Trainer(model, loader, "2ep", optimizers=optimizer, progress_bar=False, loggers=[], device="cpu").fit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    times = alternate({"plain": plain_loop, "trainer": trainer_loop}, args.repeats)
    for name, seconds in times.items():
        print(f"{name:8s} {STEPS / statistics.median(seconds):8.0f} steps/s   (median of {args.repeats})")
    ratio = median_ratio(times["plain"], times["trainer"])
    print(f"ratio trainer/plain = {ratio:.3f} steps/s   (median of per-round ratios; target >= 0.95)")


if __name__ == "__main__":
    main()
