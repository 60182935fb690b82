"""MNIST-1D with and without SWA: the same seed, data order and schedule; SWA averages the last 30%.

    python examples/mnist1d_swa.py [--epochs 40] [--seeds 0 1 2]

Runs on a CPU in about a minute. Prints the test accuracy of each run and of the SWA model next to
the baseline; the MNIST-1D paper reports about 94% for this CNN.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils.data import DataLoader

from composer_swa import SWA, Trainer
from composer_swa.data import mnist1d_datasets
from composer_swa.models import MNIST1DConvNet


def train(seed: int, epochs: int, use_swa: bool, train_set: object, test_set: object) -> float:
    torch.manual_seed(seed)
    model = MNIST1DConvNet(batch_norm=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * 40  # 4000 samples / 100 per batch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    # SWA takes over the LR at 70% and holds a constant swa_lr (Izmailov et al.: lr_init/10 to lr_init/2).
    algorithms = (
        [SWA(swa_start="0.7dur", update_interval="1ep", schedule_swa_lr=True, swa_lr=0.02, anneal_steps=40)] if use_swa else []
    )
    generator = torch.Generator().manual_seed(seed)
    trainer = Trainer(
        model,
        DataLoader(train_set, batch_size=100, shuffle=True, generator=generator),  # type: ignore[arg-type]
        f"{epochs}ep",
        eval_dataloader=DataLoader(test_set, batch_size=500),  # type: ignore[arg-type]
        eval_interval=f"{epochs}ep",
        optimizers=optimizer,
        schedulers=scheduler,
        algorithms=algorithms,
        device="cpu",
        loggers=[],
    )
    trainer.fit()
    return trainer.state.eval_metrics["eval/accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    train_set, test_set = mnist1d_datasets()
    results: dict[str, list[float]] = {"SGD": [], "SGD + SWA": []}
    for seed in args.seeds:
        for name, use_swa in (("SGD", False), ("SGD + SWA", True)):
            accuracy = train(seed, args.epochs, use_swa, train_set, test_set)
            results[name].append(accuracy)
            print(f"seed {seed}  {name:10s} test accuracy {accuracy:.2%}")
    print(f"\nMNIST-1D test accuracy, {len(args.seeds)} seeds, {args.epochs} epochs (paper's CNN: ~94%)")
    for name, accuracies in results.items():
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        print(f"  {name:10s} {statistics.mean(accuracies):.2%} ± {spread:.2%}")


if __name__ == "__main__":
    main()
