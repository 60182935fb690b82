"""README's results tables: averaging against its live weights and a decayed baseline, on real data.

Two studies, each a pair of configs in ``examples/`` trained by ``swa-train A.yaml B.yaml --jobs 2``
(both cores, one thread a run) once per seed; the numbers are read back from each run's
``summary.json`` (``final_metrics_by_weights``: every set of weights evaluated at the end):

- ``char``: a character GPT on this Python's standard library, constant LR (after warm-up) with EMA,
  LAWA and SWA, against a cosine decay to zero (``char_stdlib_constant.yaml``, ``char_stdlib_cosine.yaml``).
- ``fashion``: a small BN CNN on a 10k Fashion-MNIST subset, SWA with the paper's schedule against a
  cosine decay (``fashion_mnist_swa.yaml``, ``fashion_mnist_cosine.yaml``).

Each row gives the mean ± sample std over the seeds, and the paired wins against the baseline (the
cosine run of the same seed): lower eval loss, higher accuracy. Raw per-seed figures go to
``OUT/results.json`` beside the tables in ``OUT/results.md`` (default ``benchmarks/results/``).

Run: ``python -m benchmarks.results [--seeds 0 1 2] [--studies char fashion] [--out benchmarks/results]``
(about 17 minutes for both studies and three seeds on a 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: study -> (config with averaging, its baseline config)
STUDIES = {"char": ("char_stdlib_constant", "char_stdlib_cosine"), "fashion": ("fashion_mnist_swa", "fashion_mnist_cosine")}


def run_seed(study: str, seed: int, out: Path) -> dict[str, dict[str, float]]:
    """Trains both configs of ``study`` with ``seed``; returns ``{"<config>: <weights>": metrics}``."""
    averaged, baseline = STUDIES[study]
    folder = out / study / f"seed-{seed}"
    command = [
        sys.executable, "-m", "composer_swa.cli.train", "run",
        str(_EXAMPLES / f"{averaged}.yaml"), str(_EXAMPLES / f"{baseline}.yaml"),
        "--jobs", "2", "--set", f"trainer.seed={seed}", "--run-dir", str(folder),
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    rows: dict[str, dict[str, float]] = {}
    for name in (averaged, baseline):
        summary = json.loads((folder / name / "summary.json").read_text())
        for weights, metrics in summary["final_metrics_by_weights"].items():
            rows[f"{name}: {weights}"] = {**metrics, "seconds": summary["seconds"]}
    return rows


def table(study: str, per_seed: dict[int, dict[str, dict[str, float]]]) -> str:
    """A markdown table: each row's eval loss and accuracy (mean ± std) and its paired wins over the baseline."""
    _, baseline = STUDIES[study]
    reference = f"{baseline}: live"
    seeds = sorted(per_seed)
    lines = ["| weights | eval loss | eval accuracy (%) | wins vs cosine (loss / acc) |", "|---|---|---|---|"]
    for row in per_seed[seeds[0]]:
        loss = [per_seed[s][row]["eval/loss"] for s in seeds]
        accuracy = [100 * per_seed[s][row]["eval/accuracy"] for s in seeds]
        if row == reference:
            wins = "(baseline)"
        else:
            loss_wins = sum(per_seed[s][row]["eval/loss"] < per_seed[s][reference]["eval/loss"] for s in seeds)
            accuracy_wins = sum(per_seed[s][row]["eval/accuracy"] > per_seed[s][reference]["eval/accuracy"] for s in seeds)
            wins = f"{loss_wins}/{len(seeds)} / {accuracy_wins}/{len(seeds)}"
        lines.append(f"| {row} | {_mean_std(loss, 4)} | {_mean_std(accuracy, 2)} | {wins} |")
    return "\n".join(lines)


def _mean_std(values: list[float], digits: int) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--studies", nargs="+", choices=sorted(STUDIES), default=list(STUDIES))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    raw: dict[str, dict[int, dict[str, dict[str, float]]]] = {}
    sections = []
    for study in args.studies:
        start = time.perf_counter()
        raw[study] = {}
        for seed in args.seeds:
            raw[study][seed] = run_seed(study, seed, args.out / "runs")
            print(f"{study} seed {seed}: {json.dumps(raw[study][seed])}", flush=True)
        minutes = (time.perf_counter() - start) / 60
        sections.append(f"### {study} (seeds {args.seeds}, {minutes:.1f} min)\n\n{table(study, raw[study])}")
        print(sections[-1], flush=True)
    (args.out / "results.json").write_text(json.dumps(raw, indent=1) + "\n")
    (args.out / "results.md").write_text("\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
