"""README's MNIST-1D results table: plain SGD vs SWA vs EMA, mean ± std over seeds.

Each run is an example config (examples/mnist1d_sgd.yaml, examples/mnist1d_swa.yaml; EMA is the SGD
config plus ``EMA(half_life=ema_half_life)``), built and trained exactly as ``swa-train`` would,
with ``trainer.seed`` set per seed (model init and data order). The MNIST-1D paper reports about
94% for this CNN (Greydanus 2020).

    python -m benchmarks.mnist1d_results [--seeds 0 1 2 3 4] [--ema-half-life 50ba]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from composer_swa.config import build_run, load_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_accuracy(config_name: str, seed: int, overrides: list[str]) -> float:
    config = load_config(EXAMPLES / config_name, [f"trainer.seed={seed}", "trainer.progress_bar=false", *overrides])
    trainer = build_run(config, EXAMPLES).trainer(loggers=[])
    trainer.fit()
    return float(trainer.state.eval_metrics["eval"]["accuracy"].compute())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--ema-half-life", default="50ba")
    args = parser.parse_args()
    runs = {
        "SGD, cosine": ("mnist1d_sgd.yaml", []),
        "SGD + SWA (last 30%, swa_lr 0.02)": ("mnist1d_swa.yaml", []),
        f"SGD + EMA (half_life {args.ema_half_life})": (
            "mnist1d_sgd.yaml",
            [f"algorithms=[{{name: ema, half_life: {args.ema_half_life}}}]"],
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in runs}
    for seed in args.seeds:
        for name, (config_name, overrides) in runs.items():
            results[name].append(test_accuracy(config_name, seed, overrides))
            print(f"seed {seed}  {name:40s} {results[name][-1]:.2%}", flush=True)
    print(f"\n| run | MNIST-1D test accuracy, {len(args.seeds)} seeds |\n|---|---|")
    for name, accuracies in results.items():
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        print(f"| {name} | {statistics.mean(accuracies):.2%} ± {spread:.2%} |")
    print("| MNIST-1D paper, CNN (Greydanus 2020) | ≈ 94% |")


if __name__ == "__main__":
    main()
