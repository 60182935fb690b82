"""device_check sections 3-6: the averaging kernel, training throughput, one-process group, swa-average at scale."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Row:
    """One line of the table: what was checked, its value, and ``ok`` (``None`` for a figure, not a check)."""

    check: str
    value: str
    ok: bool | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    section: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"section": self.section, "check": self.check, "value": self.value, "ok": self.ok, **self.figures}


@dataclass(frozen=True)
class Sizes:
    device: torch.device
    kernel_shapes: tuple[tuple[int, int], ...]  # (blocks, width) of stack(): Linear + LayerNorm per block
    kernel_repeats: int
    small_width: int
    gpt: dict[str, int]
    steps: int
    compile: bool
    shard_elements: int  # elements per tensor of the swa-average inputs (bf16); 6 tensors an input, 2 a shard

    @staticmethod
    def for_cuda() -> Sizes:
        gpt = {"layers": 6, "width": 384, "heads": 6, "block_size": 256, "vocab_size": 96, "batch": 32}
        return Sizes(torch.device("cuda"), ((48, 1024), (400, 128)), 20, 256, gpt, 60, True, 64 << 20)

    @staticmethod
    def for_cpu() -> Sizes:
        gpt = {"layers": 1, "width": 32, "heads": 2, "block_size": 16, "vocab_size": 20, "batch": 4}
        return Sizes(torch.device("cpu"), ((4, 64), (40, 16)), 3, 32, gpt, 3, False, 1 << 12)


def stack(blocks: int, width: int) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for _ in range(blocks):
        layers += [torch.nn.Linear(width, width), torch.nn.LayerNorm(width)]
    return torch.nn.Sequential(*layers)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds_per_call(run: Callable[[], object], repeats: int, device: torch.device) -> float:
    run()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    _sync(device)
    return (time.perf_counter() - start) / repeats


@torch.no_grad()
def averaging_kernel(sizes: Sizes) -> list[Row]:
    device, repeats = sizes.device, sizes.kernel_repeats
    copy_source = torch.empty(64 << 20 if device.type == "cuda" else 1 << 20, device=device)
    copy_target = torch.empty_like(copy_source)
    copy_bandwidth = 2 * copy_source.numel() * 4 / _seconds_per_call(lambda: copy_target.copy_(copy_source), repeats, device)
    rows = [Row("device copy bandwidth", f"{copy_bandwidth / 1e9:.1f} GB/s", figures={"bytes_per_s": copy_bandwidth})]
    for blocks, width in sizes.kernel_shapes:
        for dtype in (torch.float32, torch.bfloat16):
            rows += _kernel_rows(stack(blocks, width), dtype, sizes, copy_bandwidth)
    return rows


def _kernel_rows(model: torch.nn.Module, dtype: torch.dtype, sizes: Sizes, copy_bandwidth: float) -> list[Row]:
    from torch.optim.swa_utils import AveragedModel, get_swa_multi_avg_fn

    from composer_swa.averaging import ModelAverage

    device = sizes.device
    model.to(device, dtype)
    parameters = list(model.parameters())
    numel = sum(p.numel() for p in parameters)
    ours = ModelAverage(model, use_buffers=False)
    ours.copy_from_model()
    limit_average, limit_live = torch.zeros(numel, device=device), torch.randn(numel, device=device)
    default, foreach = AveragedModel(model), AveragedModel(model, multi_avg_fn=get_swa_multi_avg_fn())
    timm_ema = [p.detach().clone() for p in parameters]
    contenders = {
        "limit: one flat lerp_": lambda: limit_average.lerp_(limit_live, 0.1),
        "composer_swa": lambda: ours.interpolate(0.1),
        "AveragedModel default": lambda: default.update_parameters(model),
        "AveragedModel foreach": lambda: foreach.update_parameters(model),
        "timm-style foreach EMA": lambda: torch._foreach_lerp_(timm_ema, parameters, 0.001),
    }
    seconds = {name: _seconds_per_call(run, sizes.kernel_repeats, device) for name, run in contenders.items()}
    label = f"{numel / 1e6:.1f}M/{len(parameters)} {str(dtype).removeprefix('torch.')}"
    rows = []
    for name, value in seconds.items():
        ratio = value / seconds["limit: one flat lerp_"]
        figures = {"ms": value * 1e3, "x_limit": ratio, "params": numel, "tensors": len(parameters)}
        rows.append(Row(f"{label} {name}", f"{value * 1e3:.3f} ms  {ratio:.2f}x", figures=figures))
    moved = numel * (4 + 4 + torch.finfo(dtype).bits // 8)  # read and write the average, read the source
    achieved = moved / seconds["composer_swa"]
    bandwidth = {"bytes_per_s": achieved, "x_copy": achieved / copy_bandwidth}
    rows.append(
        Row(
            f"{label} composer_swa bandwidth",
            f"{achieved / 1e9:.1f} GB/s = {achieved / copy_bandwidth:.2f}x copy",
            figures=bandwidth,
        )
    )
    return rows


def throughput(sizes: Sizes) -> list[Row]:
    from composer_swa import EMA, SWA, Trainer
    from composer_swa.models.char_gpt import CharGPT

    gpt, device, rows = dict(sizes.gpt), sizes.device, []
    batch = gpt.pop("batch")
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, gpt["vocab_size"], (sizes.steps * batch, gpt["block_size"] + 1), generator=generator)
    data = [(t[:, :-1].to(device), t[:, 1:].to(device)) for t in tokens.split(batch)]
    variants: dict[str, Callable[[], list[Any]]] = {
        "no averaging": lambda: [],
        "SWA every batch": lambda: [SWA(swa_start="0ba", update_interval="1ba", swa_lr=1e-3)],
        "EMA every batch": lambda: [EMA(half_life="20ba")],
    }
    for compiled in (False, True) if sizes.compile else (False,):
        mode = "compiled" if compiled else "eager"
        baseline = None
        for name, algorithms in variants.items():
            torch.manual_seed(0)
            model = CharGPT(**gpt).to(device)
            trained = torch.compile(model) if compiled else model
            rates = []
            for _ in range(2):  # the first fit warms up (and compiles); the second is timed
                optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
                trainer = Trainer(trained, data, f"{sizes.steps}ba", optimizers=optimizer, algorithms=algorithms(),
                                  device=device, precision="bf16", progress_bar=False, loggers=[])  # fmt: skip
                _sync(device)
                start = time.perf_counter()
                trainer.fit()
                _sync(device)
                rates.append(sizes.steps / (time.perf_counter() - start))
            baseline = baseline or rates[-1]
            figures = {"steps_per_s": rates[-1], "x_no_averaging": rates[-1] / baseline, "mode": mode}
            rows.append(Row(f"GPT {mode} bf16, {name}", f"{rates[-1]:.1f} steps/s  {rates[-1] / baseline:.3f}x", figures=figures))
    return rows


def one_process_group(sizes: Sizes, folder: Path) -> list[Row]:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "rows.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1"]
    command += ["-m", "benchmarks.device_check", "--child", "nccl", str(out), sizes.device.type]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0 or not out.is_file():
        return [Row("torchrun, one process", f"exit {result.returncode}: {result.stdout[-200:]}{result.stderr[-200:]}", ok=False)]
    return [Row(**row) for row in json.loads(out.read_text())]


def nccl_child(arguments: list[str]) -> int:
    """``--child nccl OUT DEVICE_TYPE`` under torchrun, one process: NCCL (gloo on a CPU), DDP and FSDP2, SWA.

    With one process the Trainer trains unwrapped, by design; so this joins the group itself and wraps
    with the Trainer's own ``wrap_for_training``, to run DDP's and FSDP2's collectives on the device.
    """
    import torch.distributed as dist

    from benchmarks.distributed import CommunicationCounter
    from composer_swa import SWA, Trainer
    from composer_swa.averaging import ModelAverage
    from composer_swa.distributed.wrapping import wrap_for_training

    out, device_type = Path(arguments[0]), arguments[1]
    device = torch.device("cuda", torch.cuda.current_device()) if device_type == "cuda" else torch.device("cpu")
    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo")
    counter = CommunicationCounter()

    def ddp_steps(average: ModelAverage | None, ddp: Any, optimizer: torch.optim.Optimizer) -> int:
        counter.reset()
        for _ in range(4):
            loss = ddp(torch.randn(8, 64, device=device)).square().mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if average is not None:
                average.interpolate(0.5)
        _sync(device)
        return sum(counter.calls.values())

    torch.manual_seed(0)
    model = stack(2, 64).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    ddp = wrap_for_training(model, "ddp", device, [optimizer])
    counter.watch_ddp(ddp)  # type: ignore[arg-type]
    average = ModelAverage(model)
    average.copy_from_model()
    plain_calls, swa_calls = ddp_steps(None, ddp, optimizer), ddp_steps(average, ddp, optimizer)
    sharded = stack(2, 64).to(device)
    sharded_optimizer = torch.optim.SGD(sharded.parameters(), lr=0.01)
    wrap_for_training(sharded, "fsdp", device, [sharded_optimizer])
    ema = ModelAverage(sharded)
    ema.copy_from_model()
    sharded(torch.randn(8, 64, device=device)).square().mean().backward()
    sharded_optimizer.step()
    ema.interpolate(0.1)
    ema_ok = all(math.isfinite(float(t.float().sum())) for t in ema.full_state_dict().values())
    swa = SWA(swa_start="0ba", update_interval="1ba", swa_lr=0.01)
    trainer = Trainer(stack(2, 64), [(torch.randn(8, 64), torch.randn(8, 64))] * 4, "4ba", algorithms=[swa], device=device,
                      loss_fn=torch.nn.functional.mse_loss, progress_bar=False, loggers=[])  # fmt: skip
    trainer.fit()
    rows = [
        Row("joined the process group", f"backend {dist.get_backend()}, world size {dist.get_world_size()}", ok=True),
        Row("DDP wraps, trains", f"{type(ddp).__name__}, {plain_calls} collectives in 4 steps", ok=plain_calls > 0),
        Row("collectives SWA's averaging adds", f"{swa_calls - plain_calls} (target 0)", ok=swa_calls == plain_calls),
        Row("FSDP2 wraps, its average is finite", str(ema_ok), ok=ema_ok),
        Row("Trainer + SWA under torchrun", f"{trainer.state.timestamp.batch_count} batches", swa.averaged_weights() is not None),
    ]
    out.write_text(json.dumps([{k: v for k, v in row.as_dict().items() if k in ("check", "value", "ok")} for row in rows]))
    dist.destroy_process_group()
    return 0


def swa_average(sizes: Sizes, folder: Path) -> list[Row]:
    from safetensors.torch import load_file, save_file

    inputs, total = [], 0
    base = torch.randn(sizes.shard_elements, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    for k in range(4):
        model_folder = folder / f"input{k}"
        model_folder.mkdir(parents=True)
        weight_map = {}
        for shard in range(3):
            name = f"model-{shard + 1:05d}-of-00003.safetensors"
            tensors = {f"layer{2 * shard + i}.weight": (base + (k + 2 * shard + i)).contiguous() for i in range(2)}
            save_file(tensors, model_folder / name)
            weight_map |= dict.fromkeys(tensors, name)
            total += sum(t.numel() * 2 for t in tensors.values())
        (model_folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
        inputs.append(str(model_folder))
    output = folder / "average"
    wrapper = "import resource,subprocess,sys; subprocess.run(sys.argv[1:], check=True); "
    wrapper += "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    command = [sys.executable, "-c", wrapper, sys.executable, "-m", "composer_swa.cli.average", *inputs, "-o", str(output)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        return [Row("swa-average", f"exit {result.returncode}: {result.stderr[-200:]}", ok=False)]
    peak = int(result.stdout.strip().splitlines()[-1]) * 1024
    written = {}
    for shard in sorted(output.glob("*.safetensors")):
        written |= load_file(shard)
    expected = torch.stack([(base + (k + 0)).float() for k in range(4)]).mean(0).to(torch.bfloat16)
    same = "layer0.weight" in written and torch.equal(written["layer0.weight"], expected)
    return [
        Row("swa-average, 4 sharded bf16 inputs", f"{total / 1e9:.2f} GB in, {seconds:.1f} s", None, {"seconds": seconds}),
        Row(
            "peak memory of the process", f"{peak / 1e6:.0f} MB = {peak / (total / 4):.2f}x one input", None, {"peak_bytes": peak}
        ),
        Row("the average equals torch's fp32 mean in bf16", str(same), ok=same),
    ]
