"""``swa-average RECIPE.yml`` vs ``mergekit-yaml RECIPE.yml``: whole-process time and peak RSS, per method.

Writes a GPT-2-like base and three fine-tunes of it (benchmarks/average.py's shapes: ≈90M fp32
parameters, ≈365 MB each, as model folders mergekit knows), then runs the same recipe through both
tools, each in its own process, alternating, for ``linear`` (4 models), ``slerp`` (2), ``ties``,
``dare_ties`` and ``model_stock`` (a base and 3). Time is the whole process (imports included);
peak memory is each process's own maximum resident set (``VmHWM`` at exit). Targets: time ≤ 0.5 ×
mergekit's, peak RSS ≤ 0.25 × mergekit's.

Run: ``python -m benchmarks.merge [--rounds 3] [--layers 7]``; ``--quick`` checks the script on tiny models.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

from benchmarks.average import gpt_like

_METHODS = {
    "linear": lambda m, base: {"models": [{"model": x, "parameters": {"weight": 1.0}} for x in [base, *m]]},
    "slerp": lambda m, base: {"base_model": base, "models": [{"model": base}, {"model": m[0]}], "parameters": {"t": 0.4}},
    "ties": lambda m, base: {
        "base_model": base,
        "models": [{"model": x, "parameters": {"weight": 1.0, "density": 0.5}} for x in m],
    },
    "dare_ties": lambda m, base: {
        "base_model": base,
        "models": [{"model": x, "parameters": {"weight": 1.0, "density": 0.5}} for x in m],
    },
    "model_stock": lambda m, base: {"base_model": base, "models": [{"model": x} for x in m]},
}


def write_models(folder: Path, layers: int, width: int, vocab: int) -> tuple[str, list[str]]:
    """A base model folder and three fine-tunes (the base plus noise), with a GPT-2 config mergekit reads."""
    config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_layer": layers,
        "n_embd": width,
        "n_head": max(1, width // 64),
        "vocab_size": vocab,
        "n_positions": 1024,
    }
    base = gpt_like(layers, 0, width, vocab)
    paths = []
    for k in range(4):
        path = folder / ("base" if k == 0 else f"tuned{k}")
        path.mkdir()
        generator = torch.Generator().manual_seed(k)
        state = base if k == 0 else {n: v + 0.01 * torch.randn(v.shape, generator=generator) for n, v in base.items()}
        save_file(state, path / "model.safetensors")
        (path / "config.json").write_text(json.dumps(config))
        paths.append(str(path))
    return paths[0], paths[1:]


# Runs a module as its command would, and writes the process's own peak RSS (VmHWM) when it exits: a
# child's ru_maxrss would also count the parent's memory at fork, which the generated models inflate.
# It imports torch and the modules the command loads first and notes the RSS then, so that the peak
# above import (the merge's own memory) is printed apart from the libraries'.
_WRAPPER = """
import atexit, importlib, runpy, sys
def status(key):
    return 1024 * next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
module, *preload = sys.argv[2].split(",")
for name in ("torch", *preload, module):
    importlib.import_module(name)
imported = status("VmRSS")
def report(path=sys.argv[1]):
    open(path, "w").write(f"{status('VmHWM')} {imported}")
atexit.register(report)
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


# swa-average, and the modules it imports lazily once it reads a recipe.
_OURS = "composer_swa.cli.average,composer_swa.cli.average_tensor,composer_swa.merging.tensor_merge"


def run(module: str, *arguments: str) -> dict[str, float]:
    """Wall seconds, peak RSS and RSS after its imports (bytes) of one process running ``python -m module``.

    ``module`` may name, after commas, modules the command imports lazily (preloaded before RSS is noted).
    """
    with tempfile.NamedTemporaryFile() as peak:
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", _WRAPPER, peak.name, module, *arguments], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{module.split(',')[0]} {' '.join(arguments)} failed: {result.stderr[-2000:]}")
        highest, imported = (float(value) for value in Path(peak.name).read_text().split())
        return {"seconds": seconds, "peak": highest, "above_import": highest - imported}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layers", type=int, default=7)
    parser.add_argument("--methods", default=",".join(_METHODS))
    parser.add_argument("--quick", action="store_true", help="tiny models (1 layer, width 64, vocab 1000), one round")
    arguments = parser.parse_args()
    layers, width, vocab, rounds = (1, 64, 1000, 1) if arguments.quick else (arguments.layers, 768, 50257, arguments.rounds)
    if importlib.util.find_spec("mergekit") is None:
        sys.exit("mergekit is not installed here (pip install mergekit): nothing to compare with")
    with tempfile.TemporaryDirectory() as folder:
        base, tuned = write_models(Path(folder), layers, width, vocab)
        size = Path(base, "model.safetensors").stat().st_size
        print(f"a base and 3 fine-tunes of {size / 4e6:.1f}M fp32 parameters, {size / 1e6:.0f} MB each")
        print(f"{'method':12s} {'ours s':>8s} {'mk s':>8s} {'time [spread]':>18s}", end=" ")
        print(f"{'ours MB':>8s} {'mk MB':>8s} {'RSS [spread]':>18s} {'ours above import':>18s}")
        for method in arguments.methods.split(","):
            recipe = Path(folder, f"{method}.yml")
            recipe.write_text(yaml.safe_dump({"merge_method": method, "dtype": "float32", **_METHODS[method](tuned, base)}))
            samples: dict[str, list[dict[str, float]]] = {"ours": [], "mergekit": []}
            commands = {  # mergekit-yaml is mergekit.scripts.run_yaml:main
                "ours": [_OURS, str(recipe), "-o", str(Path(folder, "ours"))],
                "mergekit": [
                    "mergekit.scripts.run_yaml",
                    str(recipe),
                    str(Path(folder, "theirs")),
                    "--random-seed",
                    "0",
                    "--no-copy-tokenizer",
                ],
            }
            for round_index in range(rounds):
                for name in list(commands) if round_index % 2 == 0 else list(reversed(commands)):
                    shutil.rmtree(Path(folder, "ours"), ignore_errors=True)
                    shutil.rmtree(Path(folder, "theirs"), ignore_errors=True)
                    samples[name].append(run(*commands[name]))
            seconds = {name: statistics.median(r["seconds"] for r in runs) for name, runs in samples.items()}
            peak = {name: statistics.median(r["peak"] for r in runs) for name, runs in samples.items()}
            # Per-round ratios (each round ran both tools back to back): their median, and the spread.
            times = [o["seconds"] / m["seconds"] for o, m in zip(samples["ours"], samples["mergekit"], strict=True)]
            peaks = [o["peak"] / m["peak"] for o, m in zip(samples["ours"], samples["mergekit"], strict=True)]
            above = statistics.median(r["above_import"] for r in samples["ours"])
            print(
                f"{method:12s} {seconds['ours']:8.2f} {seconds['mergekit']:8.2f} {statistics.median(times):5.2f}x "
                f"[{min(times):.2f}-{max(times):.2f}] {peak['ours'] / 1e6:8.0f} {peak['mergekit'] / 1e6:8.0f} "
                f"{statistics.median(peaks):5.2f}x [{min(peaks):.2f}-{max(peaks):.2f}] "
                f"{above / 1e6:6.0f} MB {above / size:4.2f}x"
            )
        print("targets: time <= 0.50x mergekit's whole process, peak RSS <= 0.25x mergekit's;")
        print("above import: our peak RSS minus RSS once the command's module is imported, and that over one checkpoint")


if __name__ == "__main__":
    main()
