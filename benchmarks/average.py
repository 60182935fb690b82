"""``swa-average`` vs a naive load-everything average: time and peak memory on four GPT-like checkpoints.

Writes four checkpoints of a GPT-like layout (≈90M fp32 parameters, ≈360 MB each), then runs each
contender in its own process, alternating, and reports medians. Peak memory is the process's
VmHWM minus that of a bare ``import composer_swa``. Targets: time ≤ 0.5 × naive; peak memory ≤
0.25 × one checkpoint. mergekit's linear merge is timed too when ``mergekit-yaml`` is installed.

Run: ``python -m benchmarks.average [--rounds 3] [--layers 7]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

_CHILD = """
import json, sys, time
{imports}
start = time.perf_counter()  # the work alone: imports differ between contenders and are not the point
{body}
elapsed = time.perf_counter() - start
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"seconds": elapsed, "peak_kib": hwm}}))
"""
_BARE = ("import composer_swa", "")
_NAIVE_IMPORTS = "import torch\nfrom safetensors.torch import load_file, save_file"
_NAIVE = """
states = [load_file(path) for path in sys.argv[2:]]
average = {name: sum(state[name] for state in states) / len(states) for name in states[0]}
save_file(average, sys.argv[1])
"""
_OURS_IMPORTS = "from composer_swa.merging.merge import average_checkpoints"
_OURS = """
average_checkpoints(sys.argv[2:], sys.argv[1])
"""


def gpt_like(layers: int, seed: int, width: int = 768, vocab: int = 50257) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = {"wte.weight": (vocab, width), "wpe.weight": (1024, width), "ln_f.weight": (width,), "ln_f.bias": (width,)}
    for layer in range(layers):
        prefix = f"h.{layer}."
        shapes |= {
            prefix + "ln_1.weight": (width,), prefix + "ln_1.bias": (width,),
            prefix + "attn.c_attn.weight": (width, 3 * width), prefix + "attn.c_attn.bias": (3 * width,),
            prefix + "attn.c_proj.weight": (width, width), prefix + "attn.c_proj.bias": (width,),
            prefix + "ln_2.weight": (width,), prefix + "ln_2.bias": (width,),
            prefix + "mlp.c_fc.weight": (width, 4 * width), prefix + "mlp.c_fc.bias": (4 * width,),
            prefix + "mlp.c_proj.weight": (4 * width, width), prefix + "mlp.c_proj.bias": (width,),
        }  # fmt: skip
    return {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}


def run(imports: str, body: str, *arguments: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD.format(imports=imports, body=body), *arguments], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layers", type=int, default=7)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        inputs = []
        for k in range(4):
            path = Path(folder) / f"ckpt{k}.safetensors"
            save_file(gpt_like(arguments.layers, k), path)
            inputs.append(str(path))
        size = Path(inputs[0]).stat().st_size
        params = size // 4
        print(f"4 checkpoints of {params / 1e6:.1f}M fp32 parameters, {size / 1e6:.0f} MB each")
        bare = statistics.median(run(*_BARE)["peak_kib"] for _ in range(3))
        samples: dict[str, list[dict[str, float]]] = {"naive": [], "swa-average": []}
        contenders = {"naive": (_NAIVE_IMPORTS, _NAIVE), "swa-average": (_OURS_IMPORTS, _OURS)}
        for round_index in range(arguments.rounds):
            names = list(contenders) if round_index % 2 == 0 else list(reversed(contenders))
            for name in names:
                samples[name].append(run(*contenders[name], str(Path(folder) / f"{name}.safetensors"), *inputs))
        for name, runs in samples.items():
            seconds = statistics.median(r["seconds"] for r in runs)
            extra = statistics.median(r["peak_kib"] - bare for r in runs) * 1024
            print(
                f"{name:12s} {seconds:6.2f} s   peak RSS above import {extra / 1e6:7.1f} MB ({extra / size:.3f} x one checkpoint)"
            )
        ratios = [o["seconds"] / n["seconds"] for o, n in zip(samples["swa-average"], samples["naive"])]
        print(f"time swa-average / naive (median of per-round ratios): {statistics.median(ratios):.2f}x  (target <= 0.5x)")
        if shutil.which("mergekit-yaml") is None:
            print("mergekit: not installed here, not timed")


if __name__ == "__main__":
    main()
