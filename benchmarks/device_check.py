"""One command that checks composer_swa on a GPU: correctness against CPU fp64, then speed, in one table.

On a machine with CUDA, ``python -m benchmarks.device_check`` (no arguments) runs in about five
minutes and prints one table; it exits 1 when any correctness check fails (0 otherwise) and writes
every figure to ``device_check.json``. Sections (issue 23):

1. Correctness on the device against a CPU fp64 reference: SWA's and EMA's fp32 average of a bf16
   model, the offloaded (CPU, pinned staging) average against the on-device one, SWAG's second moment
   and deviation columns, the batch-norm pass against the CPU pass.
2. Kill-and-resume: a run SIGKILLed mid-epoch inside SWA's window, resumed, equals an uninterrupted
   run bit for bit (fp16 with GradScaler and dropout on the device's RNG under CUDA).
3. The averaging kernel: one update at the 50M/192 and 6.7M/1600 shapes against one flat ``lerp_``,
   ``AveragedModel`` (default and foreach) and timm-style foreach EMA, fp32 and bf16 sources; the
   achieved bandwidth against the device's copy bandwidth measured in the same run.
4. Training throughput of a small GPT with and without SWA and EMA every batch, eager and
   ``torch.compile`` (inductor), bf16 autocast.
5. One process under torchrun: the Trainer joins the group (NCCL), DDP and FSDP2 wrap, SWA's
   averaging adds no collective.
6. ``swa-average`` on this machine's disk: a few GB of bf16 sharded checkpoints, time and peak memory.

``--cpu`` runs the same code paths on the CPU at tiny sizes (gloo instead of NCCL, fp32 instead of
fp16, no ``torch.compile``): the CI test of this script, in seconds. Install a CUDA build of torch
first (README, "Performance").

    python -m benchmarks.device_check [--cpu] [--json device_check.json] [--sections 1,2,3,4,5,6]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks._device_correctness import averages_on_device, batch_norm_pass, kill_and_resume, resume_child, swag_on_device
from benchmarks._device_perf import Row, Sizes, averaging_kernel, nccl_child, one_process_group, swa_average, throughput

SECTIONS: dict[str, Callable[[Sizes, Path], list[Row]]] = {
    "1": lambda sizes, folder: averages_on_device(sizes) + swag_on_device(sizes) + batch_norm_pass(sizes),
    "2": kill_and_resume,
    "3": lambda sizes, folder: averaging_kernel(sizes),
    "4": lambda sizes, folder: throughput(sizes),
    "5": one_process_group,
    "6": swa_average,
}
TITLES = {
    "1": "correctness vs CPU fp64",
    "2": "kill and resume",
    "3": "averaging kernel",
    "4": "training throughput",
    "5": "one-process group",
    "6": "swa-average at scale",
}


def run_sections(sizes: Sizes, chosen: list[str], folder: Path) -> list[Row]:
    rows: list[Row] = []
    for key in chosen:
        start = time.perf_counter()
        try:
            found = SECTIONS[key](sizes, folder / f"section{key}")
        except Exception as error:  # one broken section must not hide the others' results
            traceback.print_exc()
            message = str(error).splitlines()[0][:80] if str(error) else ""
            found = [Row(f"{TITLES[key]}: {type(error).__name__}", message, ok=False)]
        for row in found:
            row.section = f"{key}. {TITLES[key]}"
        rows += found
        print(f"[device_check] section {key} ({TITLES[key]}) took {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return rows


def table(rows: list[Row]) -> str:
    lines, section = [], None
    width = max((len(row.check) for row in rows), default=10)
    for row in rows:
        if row.section != section:
            section = row.section
            lines.append(f"\n{section}")
        verdict = {True: "ok", False: "FAIL", None: ""}[row.ok]
        lines.append(f"  {row.check:{width}s}  {row.value:>28s}  {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU: the same code paths, in seconds")
    parser.add_argument("--json", type=Path, default=Path("device_check.json"), help="where the figures go")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated, from 1-6")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return {"resume": resume_child, "nccl": nccl_child}[args.child[0]](args.child[1:])
    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device here: run with --cpu for the dry run (README, 'Performance', says how to get a CUDA torch)")
        return 2
    chosen = [key.strip() for key in args.sections.split(",") if key.strip()]
    if unknown := [key for key in chosen if key not in SECTIONS]:
        print(f"--sections must name sections 1-6, got {unknown!r}")
        return 2
    sizes = Sizes.for_cpu() if args.cpu else Sizes.for_cuda()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / "composer_swa_inductor"))
    with tempfile.TemporaryDirectory(prefix="device_check_") as folder:
        rows = run_sections(sizes, chosen, Path(folder))
    device = torch.cuda.get_device_name() if sizes.device.type == "cuda" else "cpu"
    print(f"composer_swa device check on {device}, torch {torch.__version__}" + (" (--cpu dry run)" if args.cpu else ""))
    print(table(rows))
    failures = [row for row in rows if row.ok is False]
    figures = {"device": device, "torch": torch.__version__, "cpu_dry_run": args.cpu, "rows": [row.as_dict() for row in rows]}
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{len(failures)} correctness failure(s); figures in {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
