"""Cost of one averaging update: composer_swa's kernel against torch.optim.swa_utils and the memory limit.

Contenders, per shape (issue 3):
  (a) ``AveragedModel(model)``, its default per-tensor path;
  (b) ``AveragedModel(model, multi_avg_fn=get_swa_multi_avg_fn())``, its foreach path;
  (c) ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))``, its EMA;
  ours: ``ModelAverage(model).interpolate(w)``, the kernel SWA, EMA and checkpoint averaging share;
  ours, EMA: one update of the ``EMA`` algorithm itself (issue 4: same kernel, same target);
  limit: one ``lerp_`` over a single flat fp32 buffer of the same size (no per-tensor work at all).
Shapes: 48×(Linear 1024 + LayerNorm) ≈ 50M params in 192 tensors, 400×(Linear 128 + LayerNorm)
≈ 6.7M params in 1600 tensors. Printed: median ms per update and each contender as a multiple of
the limit (median of per-round ratios). Target: ours (SWA and EMA) <= 1.5× the limit on both shapes.

Threads matter on a CPU: the single flat ``lerp_`` is split across intra-op threads, while a
per-tensor op on a tensor below PyTorch's grain size (32768 elements) runs on one core. With one
thread (the default here, as in engine_overhead.py) the ratio measures per-tensor overhead alone.

    python -m benchmarks.averaging [--repeats 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, get_swa_multi_avg_fn

from benchmarks._timing import alternate, median_ratio
from composer_swa import EMA, State
from composer_swa.averaging import ModelAverage
from composer_swa.loggers import Logger

SHAPES = {"48x(Linear1024+LN)": (48, 1024), "400x(Linear128+LN)": (400, 128)}


def stack(blocks: int, width: int) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    for _ in range(blocks):
        layers += [torch.nn.Linear(width, width), torch.nn.LayerNorm(width)]
    return torch.nn.Sequential(*layers)


def measure(blocks: int, width: int, repeats: int) -> None:
    torch.manual_seed(0)
    model = stack(blocks, width)
    params = sum(p.numel() for p in model.parameters())
    tensors = sum(1 for _ in model.parameters())
    default, foreach = AveragedModel(model), AveragedModel(model, multi_avg_fn=get_swa_multi_avg_fn())
    ours = ModelAverage(model)
    ours.copy_from_model()
    ema_baseline = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    ema = EMA(smoothing=0.999)
    ema.average = ModelAverage(model)
    state = State(model=model, max_duration="1ba", train_dataloader=[0])
    ema._snapshot(state, Logger())  # the first update copies; the timed ones interpolate
    limit_average, limit_live = torch.zeros(params), torch.randn(params)

    contenders = {
        "(a) AveragedModel default": lambda: default.update_parameters(model),
        "(b) AveragedModel foreach": lambda: foreach.update_parameters(model),
        "(c) AveragedModel EMA": lambda: ema_baseline.update_parameters(model),
        "composer_swa": lambda: ours.interpolate(0.1),
        "composer_swa EMA": lambda: ema._snapshot(state, Logger()),
        "limit: one flat lerp_": lambda: limit_average.lerp_(limit_live, 0.1),
    }
    times = alternate(contenders, repeats)
    print(f"\n{blocks}x(Linear {width} + LayerNorm): {params / 1e6:.1f}M params in {tensors} tensors")
    limit = times["limit: one flat lerp_"]
    for name, seconds in times.items():
        print(f"  {name:28s} {statistics.median(seconds) * 1e3:8.2f} ms   {median_ratio(seconds, limit):6.2f}x limit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; target: composer_swa (SWA and EMA) <= 1.5x limit")
    for blocks, width in SHAPES.values():
        measure(blocks, width, args.repeats)


if __name__ == "__main__":
    main()
