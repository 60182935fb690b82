"""Two versions of composer_swa, side by side: the figures of the benchmarks, from both, in one run.

A redesign must keep the benchmarks' figures. Each round runs every benchmark script of the base
tree and of this one, alternating which goes first, and reads the figure each script prints (itself
a ratio to a plain-PyTorch contender run in the same process, so the machine's speed at that moment
cancels). The table gives each figure's median over rounds for both trees, and the median and
spread (min–max) of the per-round ratio this/base.

    git worktree add /tmp/base <commit>
    python benchmarks/side_by_side.py --base /tmp/base [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

#: script and its arguments -> the figures it prints: name -> a pattern whose first group is the value.
BENCHMARKS: dict[tuple[str, ...], dict[str, str]] = {
    ("engine_overhead.py", "--repeats", "7"): {"engine: trainer/plain steps/s": r"ratio trainer/plain = ([\d.]+)"},
    ("swa_throughput.py", "--repeats", "3"): {"SWA throughput: swa/plain steps/s": r"ratio swa/plain = ([\d.]+)"},
    ("averaging.py", "--repeats", "7"): {
        "averaging 48x1024: SWA update / flat lerp_": r"1024 \+ LayerNorm(?s:.*?)composer_swa  +[\d.]+ ms +([\d.]+)x",
        "averaging 48x1024: EMA update / flat lerp_": r"1024 \+ LayerNorm(?s:.*?)composer_swa EMA +[\d.]+ ms +([\d.]+)x",
        "averaging 400x128: SWA update / flat lerp_": r"128 \+ LayerNorm(?s:.*?)composer_swa  +[\d.]+ ms +([\d.]+)x",
        "averaging 400x128: EMA update / flat lerp_": r"128 \+ LayerNorm(?s:.*?)composer_swa EMA +[\d.]+ ms +([\d.]+)x",
    },
    ("integrations.py", "--repeats", "3"): {
        f"{loop}: {what} / bare": rf"{loop} +throughput / bare: adapter alone ([\d.]+), adapter \+ SWA ([\d.]+)"
        for loop in ("plain loop", "transformers", "lightning")
        for what in ("adapter", "adapter+SWA")
    },
}


def run_script(tree: Path, command: tuple[str, ...]) -> str:
    """The output of one benchmark script of ``tree``, run with ``tree`` first on the import path."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / command[0]), *command[1:]],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def read_figures(output: str, patterns: dict[str, str]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for name, pattern in patterns.items():
        match = re.search(pattern, output)
        if match is not None:
            figures[name] = float(match.group(2 if name.endswith("adapter+SWA / bare") else 1))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="a checkout of the version to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "this": Path(__file__).resolve().parent.parent}
    samples: dict[str, dict[str, list[float]]] = {"base": {}, "this": {}}
    for round_index in range(args.rounds):
        for command, patterns in BENCHMARKS.items():
            for label in ("base", "this") if round_index % 2 == 0 else ("this", "base"):
                for name, value in read_figures(run_script(trees[label], command), patterns).items():
                    samples[label].setdefault(name, []).append(value)
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
    header = f"this/base, median of {args.rounds} rounds [min–max]"
    print(f"| figure (higher is better, except '/ flat lerp_') | base | this | {header} |")
    print("|---|---|---|---|")
    for name, base_values in samples["base"].items():
        this_values = samples["this"].get(name, [])
        if len(this_values) != len(base_values):
            print(f"| {name} | {statistics.median(base_values):.3f} | missing | |")
            continue
        ratios = [new / old for new, old in zip(this_values, base_values)]
        print(
            f"| {name} | {statistics.median(base_values):.3f} | {statistics.median(this_values):.3f} | "
            f"{statistics.median(ratios):.3f} [{min(ratios):.3f}–{max(ratios):.3f}] |"
        )


if __name__ == "__main__":
    main()
