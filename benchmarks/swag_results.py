"""SWAG on real data: NLL, ECE, accuracy and loss of SGD, SWA and the SWAG ensemble, from one run per seed.

Recipe (issue 20): Fashion-MNIST (the package's reader), the first ``--train`` images of a permutation
seeded 0 for training and ``--test`` of the test set for evaluation; :class:`~composer_swa.models.FashionCNN`
(``--channels`` feature maps, batch norm); SGD (lr 0.05, momentum 0.9, batch 64) for ``--epochs``;
:class:`~composer_swa.SWAG` from half the run, a snapshot every ``--interval`` batches, SWA's LR
schedule annealing to ``swa_lr`` 0.01 over 10 steps, ``max_rank`` ``--rank``. One run per seed gives
every row, all evaluated by ``swa-train``'s own comparison
(:func:`~composer_swa.trainer.comparison.evaluate_every_weights`):

- ``SGD``: the live weights SWAG replaced at the end (their own batch-norm statistics);
- ``SWA``: the SWAG mean, which the model holds after fit (batch-norm statistics recomputed);
- ``SWAG``: the Bayesian model average of ``--samples`` draws at scale 0.5, each with a batch-norm pass
  over ``--bn-batches`` training batches (seed 0 of the comparison).

NLL in nats; ECE with 15 equal-width bins; loss is the Trainer's cross-entropy (the ensemble is not
one model, so its loss is its NLL). Writes ``OUT/swag.md`` (mean ± std over seeds, with every seed's
paired differences) and ``OUT/swag.json``. Default OUT ``benchmarks/results/``.

Run: ``python -m benchmarks.swag_results [--seeds 0 1 2] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from composer_swa import SWAG, Trainer
from composer_swa.data.fashion_mnist import fashion_mnist
from composer_swa.models import FashionCNN
from composer_swa.trainer.comparison import evaluate_every_weights

ROWS = {"SGD": "live", "SWA": "SWAG", "SWAG": "SWAG ensemble"}
METRICS = ("eval/nll", "eval/ece", "eval/accuracy", "eval/loss")


def run(seed: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    train = fashion_mnist("train", subset=args.train, seed=0)
    test = fashion_mnist("test", subset=args.test, seed=0)
    torch.manual_seed(seed)
    model = FashionCNN(channels=args.channels)
    swag = SWAG(
        swa_start="0.5dur", update_interval=f"{args.interval}ba", max_rank=args.rank, num_samples=args.samples,
        bn_batches=args.bn_batches, schedule_swa_lr=True, swa_lr=0.01, anneal_steps=10,
    )  # fmt: skip
    trainer = Trainer(
        model,
        DataLoader(train, batch_size=64, shuffle=True),
        f"{args.epochs}ep",
        eval_dataloader=DataLoader(test, batch_size=500),
        eval_interval=f"{args.epochs}ep",
        optimizers=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        algorithms=[swag],
        seed=seed,
        progress_bar=False,
        loggers=[],
    )
    trainer.fit()
    table = evaluate_every_weights(trainer)
    rows = {row: dict(table[key]) for row, key in ROWS.items()}
    rows["SWAG"]["eval/loss"] = rows["SWAG"]["eval/nll"]
    return rows


def markdown(results: dict[int, dict[str, dict[str, float]]], args: argparse.Namespace, seconds: float) -> str:
    seeds = sorted(results)
    lines = [
        "| weights | NLL (nats) | ECE (15 bins) | accuracy | loss |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        cells = []
        for metric in METRICS:
            values = [results[s][row][metric] for s in seeds]
            spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.4f}{spread}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed, SWAG − SWA (negative: SWAG lower):", ""]
    for seed in seeds:
        nll = results[seed]["SWAG"]["eval/nll"] - results[seed]["SWA"]["eval/nll"]
        ece = results[seed]["SWAG"]["eval/ece"] - results[seed]["SWA"]["eval/ece"]
        accuracy = results[seed]["SWAG"]["eval/accuracy"] - results[seed]["SWA"]["eval/accuracy"]
        lines.append(f"- seed {seed}: NLL {nll:+.4f}, ECE {ece:+.4f}, accuracy {accuracy:+.4f}")
    lines += [
        "",
        f"Recipe: Fashion-MNIST, {args.train} training and {args.test} test images; FashionCNN(channels={args.channels}); "
        f"SGD lr 0.05, momentum 0.9, batch 64, {args.epochs} epochs; SWAG from 0.5dur, a snapshot every {args.interval} "
        f"batches, swa_lr 0.01, max_rank {args.rank}; ensemble of {args.samples} samples at scale 0.5, "
        f"batch-norm pass over {args.bn_batches} batches each. Seeds {seeds}, mean ± std. "
        f"Wall time {seconds / 60:.1f} min on the shared CPU machine.",
        "Regenerate: `python -m benchmarks.swag_results" + (" --quick" if args.quick else "") + "`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--interval", type=int, default=8)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--bn-batches", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="A tiny size that only checks the script runs.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if args.quick:
        args.train, args.test, args.channels, args.epochs, args.interval, args.samples, args.bn_batches = 512, 256, 4, 2, 2, 3, 2
        args.rank = 4
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results: dict[int, Any] = {}
    for seed in args.seeds:
        results[seed] = run(seed, args)
        print(
            f"seed {seed}: "
            + "; ".join(f"{row} " + json.dumps({k: round(v, 4) for k, v in m.items()}) for row, m in results[seed].items()),
            flush=True,
        )
    seconds = time.perf_counter() - start
    text = markdown(results, args, seconds)
    print(text)
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "swag.md").write_text(text)
        (args.out / "swag.json").write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
