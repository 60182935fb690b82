"""The batch-norm statistics pass against a plain forward over the same data, beside torch's ``update_bn``.

A BN-CNN (four conv-BN-ReLU blocks, 16→128 channels, 32×32 images, batch 64, 16 batches, CPU, one
thread) runs three contenders over the same batches: a plain forward (``no_grad``, batch norms in
train mode, as every statistics pass runs them), ``torch.optim.swa_utils.update_bn`` (equal batch
weights) and our ``recompute_batch_norm`` (exact, sample-weighted). Runs alternate; printed: the
median time of each and the median per-round ratio to the forward. Target (issue 23): ours ≤ 1.15×.
It also prints the largest relative difference of our statistics from an fp64 recomputation.

    python -m benchmarks.bn_pass [--repeats 7] [--batches 16] [--quick]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks._timing import alternate, median_ratio
from composer_swa.averaging import recompute_batch_norm


def bn_cnn(width: int) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    channels = 3
    for out in (width, 2 * width, 4 * width, 8 * width):
        layers += [torch.nn.Conv2d(channels, out, 3, padding=1), torch.nn.BatchNorm2d(out), torch.nn.ReLU()]
        channels = out
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(channels, 10))


def exact_error(model: torch.nn.Sequential, images: list[torch.Tensor]) -> float:
    """Largest relative difference of the stored statistics from an fp64 recomputation, layer by layer.

    One fp64 forward, batch by batch in train mode as the pass runs: each batch norm's stored
    statistics are compared with those of all its inputs before it normalises them.
    """
    worst = 0.0
    with torch.no_grad():
        reference = model.double()
        activations = [x.double() for x in images]
        for layer in reference:
            if isinstance(layer, torch.nn.BatchNorm2d):
                inputs = torch.cat(activations).transpose(0, 1).flatten(1)
                mean, var = inputs.mean(1), inputs.var(1)
                assert layer.running_mean is not None and layer.running_var is not None
                for stored, exact in ((layer.running_mean, mean), (layer.running_var, var)):
                    worst = max(worst, float(((stored - exact).abs() / exact.abs().clamp_min(1e-3)).max()))
            activations = [layer(x) for x in activations]
        model.float()
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a tiny model and 4 batches: checks the script runs")
    parser.add_argument("--batches", type=int, default=16, help="batches of 64 images per pass")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    width, batches = (4, 4) if args.quick else (16, args.batches)
    model = bn_cnn(width)
    images = [torch.randn(64, 3, 32, 32) * 2 + 1 for _ in range(batches)]

    @torch.no_grad()
    def forward() -> None:
        model.train()
        for x in images:
            model(x)

    contenders = {
        "forward": forward,
        "update_bn": lambda: torch.optim.swa_utils.update_bn(images, model),
        "ours": lambda: recompute_batch_norm(model, [(x, None) for x in images]),
    }
    times = alternate(contenders, args.repeats)
    for name, seconds in times.items():
        ratio = median_ratio(seconds, times["forward"])
        spread = sorted(a / b for a, b in zip(seconds, times["forward"]))
        milliseconds = 1000 * statistics.median(seconds)
        print(f"{name:10s} {milliseconds:8.1f} ms   {ratio:.3f}x forward (spread {spread[0]:.3f}-{spread[-1]:.3f})", flush=True)
    recompute_batch_norm(model, [(x, None) for x in images])
    print(f"ours: largest relative error of the statistics vs fp64: {exact_error(model, images):.1e}   (target: ours <= 1.15x)")


if __name__ == "__main__":
    main()
