"""Cost of one SWAG update against SWA's and against the flat-copy limit (issue 20).

Contenders, on one model (48×(Linear 1024 + LayerNorm) ≈ 50M params in 192 tensors; ``--quick``:
8×(Linear 256 + LayerNorm)):
  SWA: one update of the ``SWA`` algorithm (the mean: one lerp through the averaging kernel);
  SWAG: one update of the ``SWAG`` algorithm (the mean, the squared lerp of the second moment, one
  deviation column written into the ring buffer of ``max_rank`` columns);
  limit: the same three passes on single flat fp32 tensors of the parameters' size, with no per-tensor
  work: ``mean.lerp_(w, a)``, ``second.mul_(1 - a).addcmul_(w, w, value=a)``, ``column.copy_(w).sub_(mean)``.
Printed: median ms per update, and each contender as a multiple of the limit and SWAG as a multiple of
SWA (medians of per-round ratios, rounds alternating the order, with the spread as the inter-quartile
range of those ratios). SWAG does about three times SWA's memory traffic, so SWAG/SWA near 3 and
SWAG/limit near 1 mean nothing is wasted.

    python -m benchmarks.swag_update [--repeats 15] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks._timing import alternate
from composer_swa import SWA, SWAG, State
from composer_swa.loggers import Logger


def stack(blocks: int, width: int) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    for _ in range(blocks):
        layers += [torch.nn.Linear(width, width), torch.nn.LayerNorm(width)]
    return torch.nn.Sequential(*layers)


def ratios(numerator: list[float], denominator: list[float]) -> str:
    per_round = sorted(a / b for a, b in zip(numerator, denominator))
    quartiles = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else [per_round[0]] * 3
    return f"{quartiles[1]:5.2f}x [{quartiles[0]:.2f}-{quartiles[2]:.2f}]"


def measure(blocks: int, width: int, max_rank: int, repeats: int) -> None:
    torch.manual_seed(0)
    model = stack(blocks, width)
    state = State(model=model, max_duration="1ba", train_dataloader=[0])
    swa, swag = SWA(), SWAG(max_rank=max_rank)
    for algorithm in (swa, swag):
        algorithm._prepare_average(state)
        algorithm._update(state, Logger())  # the first update copies; the timed ones interpolate
    params = sum(p.numel() for p in model.parameters())
    live, mean, second = torch.randn(params), torch.zeros(params), torch.zeros(params)
    ring = torch.zeros(max_rank, params)
    column = iter(range(10**9))

    def limit() -> None:
        mean.lerp_(live, 0.1)
        second.mul_(0.9).addcmul_(live, live, value=0.1)
        ring[next(column) % max_rank].copy_(live).sub_(mean)

    contenders = {
        "SWA update": lambda: swa._update(state, Logger()),
        "SWAG update": lambda: swag._update(state, Logger()),
        "limit: 3 flat passes": limit,
    }
    for _ in range(max_rank):  # steady state: every ring column written once (its pages touched)
        for run in contenders.values():
            run()
    times = alternate(contenders, repeats)
    print(
        f"\n{blocks}x(Linear {width} + LayerNorm): {params / 1e6:.1f}M params in {len(list(model.parameters()))} tensors, "
        f"max_rank={max_rank}"
    )
    for name, seconds in times.items():
        print(f"  {name:22s} {statistics.median(seconds) * 1e3:8.2f} ms   {ratios(seconds, times['limit: 3 flat passes'])} limit")
    print(f"  SWAG / SWA: {ratios(times['SWAG update'], times['SWA update'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-rank", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="A small model and 3 rounds: checks that it runs.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians [inter-quartile range] of per-round ratios")
    if args.quick:
        measure(8, 256, args.max_rank, 3)
    else:
        measure(48, 1024, args.max_rank, args.repeats)


if __name__ == "__main__":
    main()
