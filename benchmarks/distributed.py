"""What averaging costs under torch.distributed: communication per step (DDP) and memory per process (FSDP2).

Launches 2 processes on gloo with torchrun's launcher. Under DDP it trains the same model with and
without SWA (averaging at every step) and counts every collective both runs make: DDP's gradient
buckets (through a comm hook), its buffer broadcasts, and any ``torch.distributed`` call from
Python. SWA's share is the difference, per step; the target is none. Rounds alternate and step times
are compared as a median ratio. Under FSDP2 it reports the bytes of the EMA average each process
holds against the whole model's fp32 size; the target is 1/N.

Run: ``python -m benchmarks.distributed [--nproc 2] [--width 1024] [--steps 30] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.run import get_args_parser, run
from torch.utils.data import DataLoader, TensorDataset

from composer_swa import EMA, SWA, Trainer
from composer_swa.distributed import join_process_group

_COLLECTIVES = ("all_reduce", "broadcast", "all_gather", "all_gather_object", "all_gather_into_tensor", "reduce_scatter_tensor")


class CommunicationCounter:
    """Counts collectives and their bytes: Python ``torch.distributed`` calls, DDP buckets and buffer broadcasts."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self._all_reduce = dist.all_reduce
        for name in _COLLECTIVES:
            setattr(dist, name, self._counting(name, getattr(dist, name)))

    def _counting(self, name: str, function: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            self.bytes[name] += sum(a.numel() * a.element_size() for a in args if isinstance(a, torch.Tensor))
            return function(*args, **kwargs)

        return counted

    def watch_ddp(self, ddp: torch.nn.parallel.DistributedDataParallel) -> None:
        def gradient_hook(state, bucket):  # type: ignore[no-untyped-def]  # DDP checks the annotations as objects
            gradients = bucket.buffer()
            self.calls["ddp gradient buckets"] += 1
            self.bytes["ddp gradient buckets"] += gradients.numel() * gradients.element_size()
            gradients.div_(dist.get_world_size())  # DDP's default: the mean over processes
            future = self._all_reduce(gradients, async_op=True).get_future()
            return future.then(lambda done: done.value()[0])

        ddp.register_comm_hook(None, gradient_hook)
        broadcast = ddp._distributed_broadcast_coalesced

        def counted_broadcast(tensors: list[torch.Tensor], *args: Any, **kwargs: Any) -> Any:
            self.calls["ddp buffer broadcast"] += 1
            self.bytes["ddp buffer broadcast"] += sum(t.numel() * t.element_size() for t in tensors)
            return broadcast(tensors, *args, **kwargs)

        ddp._distributed_broadcast_coalesced = counted_broadcast  # type: ignore[method-assign]

    def reset(self) -> None:
        self.calls.clear()
        self.bytes.clear()


def model(width: int) -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for _ in range(4):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))


def trainer(width: int, steps: int, algorithms: list[Any], parallelism: str) -> Trainer:
    network = model(width)
    data = TensorDataset(torch.randn(steps * 32, width), torch.randint(0, 10, (steps * 32,)))
    return Trainer(
        network,
        DataLoader(data, batch_size=32 // dist.get_world_size()),
        f"{steps}ba",
        optimizers=torch.optim.SGD(network.parameters(), lr=0.01),
        algorithms=algorithms,
        progress_bar=False,
        loggers=[],
        log_interval=f"{10 * steps}ba",
        parallelism=parallelism,
    )


def ddp_communication(counter: CommunicationCounter, width: int, steps: int, repeats: int) -> None:
    contenders = {"SWA": lambda: [SWA(swa_start="0ba", update_interval="1ba", swa_lr=0.01)], "none": lambda: []}
    per_step: dict[str, tuple[float, float]] = {}
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for round_index in range(repeats):
        for name in list(contenders) if round_index % 2 == 0 else reversed(list(contenders)):
            run = trainer(width, steps, contenders[name](), "ddp")
            counter.watch_ddp(run._train_module)  # type: ignore[arg-type]
            counter.reset()
            dist.barrier()
            start = time.perf_counter()
            run.fit()
            seconds[name].append(time.perf_counter() - start)
            per_step[name] = (sum(counter.calls.values()) / steps, sum(counter.bytes.values()) / steps)
            if round_index == 0 and dist.get_rank() == 0:
                print(f"  {name:>4}: {dict(counter.calls)} calls, {dict(counter.bytes)} bytes over {steps} steps")
    if dist.get_rank() == 0:
        added_calls = per_step["SWA"][0] - per_step["none"][0]
        added_bytes = per_step["SWA"][1] - per_step["none"][1]
        ratio = statistics.median(a / b for a, b in zip(seconds["SWA"], seconds["none"]))
        processes = dist.get_world_size()
        print(f"DDP, {processes} processes: SWA adds {added_calls:.2f} collectives and {added_bytes:.0f} bytes a step")
        print(f"  (target: none); step time with SWA / without: {ratio:.2f}x (median of {repeats} alternating rounds)")


def fsdp_memory(width: int, steps: int) -> None:
    ema = EMA(half_life="5ba")
    run = trainer(width, steps, [ema], "fsdp")
    run.fit()
    assert ema.average is not None
    whole = sum(p.numel() for p in model(width).parameters()) * 4
    local = ema.average.numel * 4
    gathered = ema.averaged_weights()
    assert gathered is not None and sum(t.numel() for t in gathered.values()) * 4 == whole
    sizes = [None] * dist.get_world_size()
    dist.all_gather_object(sizes, local)
    if dist.get_rank() == 0:
        print(f"FSDP2, {dist.get_world_size()} processes: EMA average per process {[f'{s / 1e6:.2f} MB' for s in sizes]}")
        print(f"  of {whole / 1e6:.2f} MB whole: {max(sizes) / whole:.3f} of it (target: 1/{dist.get_world_size()})")  # type: ignore[operator]


def worker(arguments: argparse.Namespace) -> None:
    join_process_group()
    counter = CommunicationCounter()
    torch.set_num_threads(1)
    ddp_communication(counter, arguments.width, arguments.steps, arguments.repeats)
    fsdp_memory(arguments.width, arguments.steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        worker(arguments)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    options = [f"--width={arguments.width}", f"--steps={arguments.steps}", f"--repeats={arguments.repeats}", "--worker"]
    command = ["--standalone", f"--nproc-per-node={arguments.nproc}", "-m", "benchmarks.distributed", *options]
    run(get_args_parser().parse_args(command))


if __name__ == "__main__":
    main()
