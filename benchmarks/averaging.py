"""Cost of one averaging update: composer_swa's kernel against torch.optim.swa_utils and the memory limit.

Contenders, per shape (issue 3):
  (a) ``AveragedModel(model)``, its default per-tensor path;
  (b) ``AveragedModel(model, multi_avg_fn=get_swa_multi_avg_fn())``, its foreach path;
  (c) ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))``, its EMA;
  ours: ``ModelAverage(model).interpolate(w)``, the kernel SWA, EMA and checkpoint averaging share;
  ours, EMA: one update of the ``EMA`` algorithm itself (issue 4: same kernel, same target);
  ours, flat: the same kernel on a model laid out by ``flat_parameters`` (issue 23: one ``lerp_``);
  limit: one ``lerp_`` over a single flat fp32 buffer of the same size (no per-tensor work at all).
Shapes: 48×(Linear 1024 + LayerNorm) ≈ 50M params in 192 tensors, 400×(Linear 128 + LayerNorm)
≈ 6.7M params in 1600 tensors.

Each contender runs in its own process (issue 23: a process that already ran another contender has
its allocator and caches in another state), ``--repeats`` updates after one warm-up; a round runs
every contender once, in alternating order. Printed: median ms per update, and each contender as a
multiple of the limit: the median of per-round ratios and their spread (min-max). Target: ours (SWA
and EMA) <= 1.5× the limit on both shapes.

Threads matter on a CPU: the single flat ``lerp_`` is split across intra-op threads, while a
per-tensor op on a tensor below PyTorch's grain size (32768 elements) runs on one core. With one
thread (the default here, as in engine_overhead.py) the ratio measures per-tensor overhead alone.

    python -m benchmarks.averaging [--rounds 5] [--repeats 15] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

SHAPES = {"48x(Linear1024+LN)": (48, 1024), "400x(Linear128+LN)": (400, 128)}
QUICK_SHAPES = {"4x(Linear64+LN)": (4, 64), "40x(Linear16+LN)": (40, 16)}
CONTENDERS = (
    "(a) AveragedModel default",
    "(b) AveragedModel foreach",
    "(c) AveragedModel EMA",
    "composer_swa",
    "composer_swa EMA",
    "composer_swa, flat_parameters",
    "limit: one flat lerp_",
)
LIMIT = CONTENDERS[-1]


def stack(blocks: int, width: int) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    for _ in range(blocks):
        layers += [torch.nn.Linear(width, width), torch.nn.LayerNorm(width)]
    return torch.nn.Sequential(*layers)


def contender(name: str, model: torch.nn.Module) -> Callable[[], object]:
    """One update of ``name`` on ``model``, ready to time (its first update already done)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, get_swa_multi_avg_fn

    from composer_swa import EMA, State
    from composer_swa.averaging import ModelAverage, flat_parameters
    from composer_swa.loggers import Logger

    if name.startswith("(a)"):
        default = AveragedModel(model)
        return lambda: default.update_parameters(model)
    if name.startswith("(b)"):
        foreach = AveragedModel(model, multi_avg_fn=get_swa_multi_avg_fn())
        return lambda: foreach.update_parameters(model)
    if name.startswith("(c)"):
        ema_baseline = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
        return lambda: ema_baseline.update_parameters(model)
    if name == "composer_swa EMA":
        ema = EMA(smoothing=0.999)
        ema.average = ModelAverage(model)
        state, logger = State(model=model, max_duration="1ba", train_dataloader=[0]), Logger()
        ema._snapshot(state, logger)  # the first update copies; the timed ones interpolate
        return lambda: ema._snapshot(state, logger)
    if name.startswith("composer_swa"):
        if name.endswith("flat_parameters"):
            flat_parameters(model)
        ours = ModelAverage(model)
        ours.copy_from_model()
        return lambda: ours.interpolate(0.1)
    params = sum(p.numel() for p in model.parameters())
    limit_average, limit_live = torch.zeros(params), torch.randn(params)
    return lambda: limit_average.lerp_(limit_live, 0.1)


def child(name: str, blocks: int, width: int, repeats: int, threads: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    update = contender(name, stack(blocks, width))
    update()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        update()
        seconds.append(time.perf_counter() - start)
    print(json.dumps(statistics.median(seconds)))


def in_process(name: str, blocks: int, width: int, repeats: int, threads: int) -> float:
    command = [sys.executable, "-m", "benchmarks.averaging", "--child", name, "--shape", f"{blocks},{width}"]
    command += ["--repeats", str(repeats), "--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(json.loads(result.stdout.strip().splitlines()[-1]))


def measure(blocks: int, width: int, rounds: int, repeats: int, threads: int) -> None:
    model = stack(blocks, width)
    params, tensors = sum(p.numel() for p in model.parameters()), sum(1 for _ in model.parameters())
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for round_index in range(rounds):
        for name in CONTENDERS if round_index % 2 == 0 else reversed(CONTENDERS):
            times[name].append(in_process(name, blocks, width, repeats, threads))
    print(f"\n{blocks}x(Linear {width} + LayerNorm): {params / 1e6:.1f}M params in {tensors} tensors")
    for name, seconds in times.items():
        ratios = sorted(a / b for a, b in zip(seconds, times[LIMIT]))
        print(
            f"  {name:32s} {statistics.median(seconds) * 1e3:8.2f} ms   {statistics.median(ratios):6.2f}x limit "
            f"(spread {ratios[0]:.2f}-{ratios[-1]:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, to check that the script runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        blocks, width = map(int, args.shape.split(","))
        child(args.child, blocks, width, args.repeats, args.threads)
        return
    print(f"torch {torch.__version__}, {args.threads} threads; target: composer_swa (SWA and EMA) <= 1.5x limit")
    for blocks, width in (QUICK_SHAPES if args.quick else SHAPES).values():
        measure(blocks, width, args.rounds, args.repeats, args.threads)


if __name__ == "__main__":
    main()
