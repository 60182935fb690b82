"""Start-up and whole-process time of the commands: ``--help`` against ``import torch``, ``swa-average`` against a naive script.

1. ``swa-average --help`` and ``swa-train --help``, each a fresh process, against ``python -c "import torch"``.
   Target: ≤ 1.15 × (the commands import only what they use; ``--help`` needs click alone).
2. ``swa-average`` averaging four GPT-like checkpoints (benchmarks/average.py's shapes), the whole process
   (interpreter, imports, reading, writing), against a naive script that loads all four with
   safetensors, averages them in memory and saves. Target: ≤ 0.6 ×.

Contenders alternate within each round (A B, then B A...); each line gives the median of the per-round
ratios and their spread (min-max), as the machines here are noisy, for wall time and for CPU time
(user + system, which waiting for a core does not inflate). Run it on a quiet machine (load < 2).

Run: ``python -m benchmarks.startup [--rounds 7] [--layers 7] [--vocab 50257]``; ``--layers 1 --vocab 8192``
makes small checkpoints for a quick run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.torch import save_file

from benchmarks.average import gpt_like

_NAIVE = """
import sys
import torch
from safetensors.torch import load_file, save_file
states = [load_file(path) for path in sys.argv[2:]]
average = {name: sum(state[name] for state in states) / len(states) for name in states[0]}
save_file(average, sys.argv[1])
"""


def command(name: str, module: str) -> list[str]:
    """The installed console script beside this interpreter, else the same call through ``-c``."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def wall(arguments: list[str]) -> tuple[float, float]:
    """Wall seconds from start to exit of a fresh process, and the CPU seconds it used (user + system).

    CPU time is the steadier figure on a shared machine: waiting for a core does not count in it.
    Output is discarded; a failure stops the benchmark.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(arguments, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare(contenders: dict[str, list[str]], reference: str, rounds: int) -> None:
    """Prints each contender's wall and CPU time against ``reference``'s: medians of per-round ratios, and their spread.

    One warm-up run each first; the order alternates every round (A B, then B A...).
    """
    for arguments in contenders.values():
        wall(arguments)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else list(reversed(names)):
            samples[name].append(wall(contenders[name]))
    for name in names:
        if name == reference:
            continue
        for kind, index in (("wall", 0), ("cpu", 1)):
            ours, theirs = [s[index] for s in samples[name]], [s[index] for s in samples[reference]]
            ratios = [a / b for a, b in zip(ours, theirs)]
            print(
                f"  {name:20s} {kind:4s} {statistics.median(ours):6.3f} s vs {reference} {statistics.median(theirs):6.3f} s:"
                f" {statistics.median(ratios):.3f}x (per-round ratios {min(ratios):.3f}-{max(ratios):.3f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--layers", type=int, default=7, help="transformer blocks of the GPT-like checkpoints")
    parser.add_argument("--vocab", type=int, default=50257, help="rows of the embedding (fewer: smaller files)")
    arguments = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {arguments.rounds} rounds")
    print("start-up (target <= 1.15x):")
    compare(
        {
            "import torch": [sys.executable, "-c", "import torch"],
            "swa-average --help": [*command("swa-average", "composer_swa.cli.average"), "--help"],
            "swa-train --help": [*command("swa-train", "composer_swa.cli.train"), "--help"],
        },
        "import torch",
        arguments.rounds,
    )
    with tempfile.TemporaryDirectory() as folder:
        inputs = []
        for k in range(4):
            tensors = gpt_like(arguments.layers, k)
            tensors["wte.weight"] = tensors["wte.weight"][: arguments.vocab].clone()
            path = Path(folder) / f"ckpt{k}.safetensors"
            save_file(tensors, path)
            inputs.append(str(path))
        size = Path(inputs[0]).stat().st_size
        print(f"whole process on 4 checkpoints of {size / 1e6:.0f} MB each (target <= 0.6x):")
        compare(
            {
                "naive script": [sys.executable, "-c", _NAIVE, str(Path(folder) / "naive.safetensors"), *inputs],
                "swa-average": [*command("swa-average", "composer_swa.cli.average"), *inputs, "-o", f"{folder}/ours.safetensors"],
            },
            "naive script",
            arguments.rounds,
        )


if __name__ == "__main__":
    main()
