"""Merging fine-tuned models on real data: which of ``swa-average``'s methods keep both tasks.

Recipe (issue 19): Fashion-MNIST (the package's reader), the training images in a permutation seeded 0.

1. A **base** :class:`~composer_swa.models.MLP` (784 → ``--hidden`` → 10, no batch norm) is trained with
   the :class:`~composer_swa.Trainer` on the first ``--base-train`` images (all ten classes): SGD (lr
   0.05, momentum 0.9, batch 64) for ``--base-epochs``. Its ``save_folder/final/model.safetensors``
   export is the base model.
2. Two **fine-tunes** start from it, each on ``--finetune-train`` further images of its own task only:
   task A = classes 0-4 (T-shirt, trouser, pullover, dress, coat), task B = classes 5-9 (sandal, shirt,
   sneaker, bag, ankle boot); the two sets and the base's are disjoint. SGD (lr 0.01, momentum 0.9,
   batch 64) for ``--finetune-epochs``, all ten outputs kept, so each fine-tune forgets the other task.
   A **joint** fine-tune on the union of both sets (same epochs) is the reference a merge would like to
   reach: it saw both tasks' data, which no merge does.
3. ``swa-average`` (the installed command, as a subprocess) merges the two fine-tunes by each method of
   :data:`METHODS`, with mergekit's usual settings, chosen before any result was seen: no parameter is
   tuned on the test set. ``fisher`` and ``regmean`` read the model and ``data.train`` of a
   ``swa-train`` config: ``--stat-train`` random training images of all ten classes (the same
   statistics data for both fine-tunes, unlike the Fisher paper's per-task data).
4. Every model is evaluated on the 10,000 test images: cross-entropy (nats) and accuracy over all of
   them, and over each task's 5,000 (still a 10-way prediction: a sandal called a sneaker is wrong,
   and so is a sandal called a coat).

Seeds (``--seeds``) change the initialisation, the batch order and DARE's masks; the data subsets stay.
Writes ``OUT/merge.md`` (mean ± std over seeds) and ``OUT/merge.json`` (every seed's figures).
Default OUT ``benchmarks/results/``.

Run: ``python -m benchmarks.merge_results [--seeds 0 1 2] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from composer_swa import Trainer
from composer_swa.data.fashion_mnist import FashionMNIST, fashion_mnist
from composer_swa.models import MLP

TASKS = {"A": (0, 1, 2, 3, 4), "B": (5, 6, 7, 8, 9)}
#: name -> (inputs among base, A and B; swa-average's flags). ``{seed}`` is the run's seed.
METHODS = {
    "linear": ("A B", "--method linear --weights 1,1"),
    "slerp": ("A B", "--method slerp --base-model {A} --param t=0.5"),
    "task_arithmetic": ("base A B", "--method task_arithmetic --base-model {base} --param weight=1"),
    "ties": ("base A B", "--method ties --base-model {base} --param density=0.5 --param weight=1"),
    "dare_ties": ("base A B", "--method dare_ties --base-model {base} --param density=0.5 --param weight=1 --seed {seed}"),
    "breadcrumbs": (
        "base A B",
        "--method breadcrumbs --base-model {base} --param density=0.9 --param gamma=0.01 --param weight=1",
    ),
    "model_stock": ("base A B", "--method model_stock --base-model {base}"),
    "fisher": ("A B", "--method fisher --config {config}"),
    "regmean": ("A B", "--method regmean --config {config}"),
}
CONFIG = """\
model: {{name: mlp, in_features: 784, num_classes: 10, hidden: {hidden}}}
data:
  train: {{name: fashion_mnist, split: train, subset: {samples}, seed: 1, batch_size: 100}}
optimizer: {{name: sgd, lr: 0.01}}
trainer: {{max_duration: 1ep}}
"""


def train_subsets(args: argparse.Namespace) -> dict[str, FashionMNIST]:
    """The base's, each task's and the joint training sets: disjoint slices of one fixed permutation."""
    full = fashion_mnist("train")
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
    images, labels = full.images[order].numpy(), full.labels[order].numpy()
    sets = {"base": FashionMNIST(images[: args.base_train], labels[: args.base_train])}
    rest = np.arange(args.base_train, len(labels))
    chosen = {}
    for task, classes in TASKS.items():
        chosen[task] = rest[np.isin(labels[rest], classes)][: args.finetune_train]
        sets[task] = FashionMNIST(images[chosen[task]], labels[chosen[task]])
    joint = np.sort(np.concatenate(list(chosen.values())))
    sets["joint"] = FashionMNIST(images[joint], labels[joint])
    return sets


def train(model: MLP, data: FashionMNIST, epochs: int, lr: float, seed: int, folder: Path) -> Path:
    """Fits ``model`` with the Trainer and returns its ``final/`` safetensors export."""
    trainer = Trainer(
        model,
        DataLoader(data, batch_size=64, shuffle=True),
        f"{epochs}ep",
        optimizers=torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9),
        seed=seed,
        save_folder=folder,
        save_interval=f"{epochs}ep",
        progress_bar=False,
        loggers=[],
    )
    trainer.fit()
    return folder / "final" / "model.safetensors"


def evaluate(path: Path, hidden: list[int], test: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """Loss and accuracy of the weights in ``path``, over all test images and over each task's."""
    model = MLP(784, 10, hidden=hidden)
    model.load_state_dict(load_file(path))
    model.eval()
    images, labels = test
    with torch.no_grad():
        logits = model(images)
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    correct = (logits.argmax(1) == labels).float()
    result = {"all/loss": losses.mean().item(), "all/accuracy": correct.mean().item()}
    for task, classes in TASKS.items():
        mask = torch.isin(labels, torch.tensor(classes))
        result[f"{task}/loss"] = losses[mask].mean().item()
        result[f"{task}/accuracy"] = correct[mask].mean().item()
    return result


def merge(name: str, paths: dict[str, Path], seed: int, output: Path) -> None:
    """Runs ``swa-average`` as a user would; a failure stops the benchmark with its output."""
    inputs, flags = METHODS[name]
    fields = {key: str(value) for key, value in paths.items()} | {"seed": str(seed)}
    command = [sys.executable, "-m", "composer_swa.cli.average", *(str(paths[k]) for k in inputs.split())]
    command += [flag.format(**fields) for flag in flags.split()] + ["-o", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"swa-average --method {name} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def task_vector_cosines(paths: dict[str, Path]) -> dict[str, float]:
    """Per tensor, the cosine between the two task vectors: model_stock's interpolation ratio comes from it."""
    base, a, b = (load_file(paths[k]) for k in ("base", "A", "B"))
    return {
        name: torch.nn.functional.cosine_similarity((a[name] - t).flatten(), (b[name] - t).flatten(), dim=0).item()
        for name, t in base.items()
    }


def run(
    seed: int, args: argparse.Namespace, sets: dict[str, FashionMNIST], work: Path
) -> tuple[dict[str, Any], dict[str, float]]:
    test_set = fashion_mnist("test")
    test = (torch.stack([test_set[i][0] for i in range(len(test_set))]), test_set.labels)
    folder = work / f"seed{seed}"
    torch.manual_seed(seed)
    paths = {"base": train(MLP(784, 10, hidden=args.hidden), sets["base"], args.base_epochs, 0.05, seed, folder / "base")}
    for name in ("A", "B", "joint"):
        model = MLP(784, 10, hidden=args.hidden)
        model.load_state_dict(load_file(paths["base"]))
        paths[name] = train(model, sets[name], args.finetune_epochs, 0.01, seed, folder / name)
    config = folder / "statistics.yaml"
    config.write_text(CONFIG.format(hidden=json.dumps(args.hidden), samples=args.stat_train))
    rows = {
        "base": evaluate(paths["base"], args.hidden, test),
        "fine-tune A": evaluate(paths["A"], args.hidden, test),
        "fine-tune B": evaluate(paths["B"], args.hidden, test),
    }
    for name in METHODS:
        output = folder / "merged" / f"{name}.safetensors"
        merge(name, {**paths, "config": config}, seed, output)
        rows[name] = evaluate(output, args.hidden, test)
    rows["joint fine-tune (reference)"] = evaluate(paths["joint"], args.hidden, test)
    return rows, task_vector_cosines(paths)


COLUMNS = ("all/loss", "all/accuracy", "A/loss", "A/accuracy", "B/loss", "B/accuracy")


def markdown(
    results: dict[int, dict[str, dict[str, float]]],
    cosines: dict[int, dict[str, float]],
    args: argparse.Namespace,
    seconds: float,
    cpu: float,
) -> str:
    seeds = sorted(results)
    lines = [
        "| model | test loss | test accuracy | task A loss | task A accuracy | task B loss | task B accuracy "
        "| seeds better than base (loss / acc) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results[seeds[0]]:
        cells = []
        for column in COLUMNS:
            values = [results[s][row][column] for s in seeds]
            scale, digits = (100, 2) if column.endswith("accuracy") else (1, 4)
            spread = f" ± {scale * statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
            cells.append(f"{scale * statistics.mean(values):.{digits}f}{spread}")
        base = [results[s]["base"] for s in seeds]
        lower = sum(results[s][row]["all/loss"] < b["all/loss"] for s, b in zip(seeds, base))
        higher = sum(results[s][row]["all/accuracy"] > b["all/accuracy"] for s, b in zip(seeds, base))
        cells.append("—" if row == "base" else f"{lower}/{len(seeds)} / {higher}/{len(seeds)}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    mean_cosines = {name: statistics.mean(cosines[s][name] for s in seeds) for name in cosines[seeds[0]]}
    commands = []
    for name, (inputs, flags) in METHODS.items():
        fields = {"base": "base.safetensors", "A": "A.safetensors", "seed": "SEED", "config": "statistics.yaml"}
        shown = " ".join(f"{k}.safetensors" for k in inputs.split())
        commands.append(f"swa-average {shown} {flags.format(**fields)} -o {name}.safetensors")
    lines += [
        "",
        f"Accuracy in %, loss in nats; mean ± std over seeds {seeds}"
        + (" (one seed: no spread)" if len(seeds) == 1 else "")
        + f". Wall time {seconds / 60:.1f} min, {cpu / 60:.1f} CPU-minutes (this process and its swa-average "
        "subprocesses) on the shared CPU machine.",
        "",
        "Cosine between the task vectors θ_A − θ_base and θ_B − θ_base, per tensor, mean over seeds: "
        + ", ".join(f"`{name}` {value:+.3f}" for name, value in mean_cosines.items())
        + " (model_stock's ratio t = 2cos/(1 + cos) for two models).",
        "",
        f"Recipe: Fashion-MNIST; MLP 784 → {args.hidden} → 10 (ReLU, no batch norm). Base: the first {args.base_train} "
        f"images of a permutation seeded 0 (all classes), SGD lr 0.05, momentum 0.9, batch 64, {args.base_epochs} "
        f"epochs. Fine-tunes from the base: {args.finetune_train} further images of task A (classes 0-4) or task B "
        f"(classes 5-9), disjoint, SGD lr 0.01, momentum 0.9, batch 64, {args.finetune_epochs} epochs; the joint "
        "reference fine-tunes on both sets. Trained with composer_swa's Trainer, exported by its save_folder/final/. "
        f"fisher and regmean use statistics.yaml: the same MLP, data.train {args.stat_train} random training images "
        "(all classes, seed 1, batch 100). Evaluation on the 10,000 test images; a task's columns are its 5,000 "
        "images, still predicted among all ten classes. The merges, as run:",
        "",
        "```bash",
        *commands,
        "```",
        "",
        "Regenerate: `python -m benchmarks.merge_results" + (" --quick" if args.quick else "") + "`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128])
    parser.add_argument("--base-train", type=int, default=2000)
    parser.add_argument("--base-epochs", type=int, default=3)
    parser.add_argument("--finetune-train", type=int, default=5000)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--stat-train", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="A tiny size that only checks the script runs.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.hidden, args.base_train, args.finetune_train, args.stat_train = args.seeds[:1], [16], 500, 500, 100
        args.base_epochs = args.finetune_epochs = 1
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    sets = train_subsets(args)
    results: dict[int, Any] = {}
    cosines: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            results[seed], cosines[seed] = run(seed, args, sets, Path(work))
            print(f"seed {seed}: " + json.dumps({r: round(m["all/accuracy"], 4) for r, m in results[seed].items()}), flush=True)
    seconds = time.perf_counter() - start
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    text = markdown(results, cosines, args, seconds, cpu)
    print(text)
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "merge.md").write_text(text)
        record = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "wall_s": seconds,
            "cpu_s": cpu,
            "results": results,
            "task_vector_cosines": cosines,
        }
        (args.out / "merge.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
