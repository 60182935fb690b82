"""``swa-average``'s work vs a naive load-everything average and vs the I/O limit, on four GPT-like checkpoints.

Writes four checkpoints of a GPT-like layout (≈90M fp32 parameters, ≈360 MB each), then runs each
contender in its own process, alternating, and reports medians and per-round ratios. Each times
its work alone, after its imports (benchmarks/startup.py times whole processes):

- ``swa-average``: :func:`~composer_swa.merging.merge.average_checkpoints` (atomic, fsynced output);
- naive: safetensors ``load_file`` of all four, a sum in memory, ``save_file`` (no fsync);
- the I/O limit: read every input byte into one reused buffer, write the output's bytes, fsync.

Peak memory is the process's VmHWM minus its RSS once its imports are done. Targets (issue 23):
work ≤ 1.5 × the I/O limit; peak memory above import ≤ 0.25 × one checkpoint.

Run: ``python -m benchmarks.average [--rounds 5] [--layers 7]``
"""

from __future__ import annotations

import argparse
import json
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
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
start = time.perf_counter()  # the work alone: imports differ between contenders and are not the point
{body}
elapsed = time.perf_counter() - start
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"seconds": elapsed, "above_import_kib": hwm - rss}}))
"""
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
_IO_IMPORTS = "import os"
# Reading every input and writing (and fsyncing) as many bytes as the output has: what any average must do.
_IO_LIMIT = """
buffer = bytearray(8 << 20)
for path in sys.argv[2:]:
    with open(path, "rb", buffering=0) as file:
        while file.readinto(buffer):
            pass
left = os.path.getsize(sys.argv[2])
with open(sys.argv[1], "wb", buffering=0) as file:
    while left > 0:
        left -= file.write(memoryview(buffer)[: min(left, len(buffer))])
    os.fsync(file.fileno())
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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layers", type=int, default=7)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        inputs = []
        for k in range(4):
            path = Path(folder) / f"ckpt{k}.safetensors"
            save_file(gpt_like(arguments.layers, k), path)
            inputs.append(str(path))
        size = Path(inputs[0]).stat().st_size
        print(f"4 checkpoints of {size / 4e6:.1f}M fp32 parameters, {size / 1e6:.0f} MB each")
        contenders = {
            "swa-average": (_OURS_IMPORTS, _OURS),
            "naive": (_NAIVE_IMPORTS, _NAIVE),
            "I/O limit": (_IO_IMPORTS, _IO_LIMIT),
        }
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
        for round_index in range(arguments.rounds):
            names = list(contenders) if round_index % 2 == 0 else list(reversed(contenders))
            for name in names:
                output = Path(folder) / f"{name.replace('/', '')}.safetensors"
                output.unlink(missing_ok=True)
                samples[name].append(run(*contenders[name], str(output), *inputs))
        for name, runs in samples.items():
            seconds = statistics.median(r["seconds"] for r in runs)
            extra = statistics.median(r["above_import_kib"] for r in runs) * 1024
            print(f"{name:12s} {seconds:6.2f} s   peak RSS above import {extra / 1e6:7.1f} MB ({extra / size:.3f}x a checkpoint)")
        for other, target in (("I/O limit", "target <= 1.5x"), ("naive", "no fsync there")):
            ratios = sorted(o["seconds"] / n["seconds"] for o, n in zip(samples["swa-average"], samples[other]))
            print(
                f"swa-average / {other}: {statistics.median(ratios):.2f}x (per-round ratios {ratios[0]:.2f}-{ratios[-1]:.2f};"
                f" {target})"
            )
        print("peak RSS above import: target <= 0.25x one checkpoint")


if __name__ == "__main__":
    main()
