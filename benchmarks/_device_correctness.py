"""device_check sections 1 and 2: averages, SWAG's moments, the batch-norm pass vs a CPU fp64 reference; kill and resume."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmarks._device_perf import Row, Sizes, stack
from benchmarks.bn_pass import bn_cnn
from composer_swa import SWA, Callback, Trainer
from composer_swa.averaging import ModelAverage, recompute_batch_norm
from composer_swa.averaging.swag_moments import SWAGMoments

KILL_AT = 22  # epoch 2 of 4 (12 batches each), inside SWA's window 0.25dur-0.75dur; last checkpoint at 20


def _relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.double().cpu() - reference).abs().max() / reference.abs().max().clamp_min(1e-12))


@torch.no_grad()
def averages_on_device(sizes: Sizes) -> list[Row]:
    """SWA's mean and EMA of a bf16 model kept in fp32 on the device, and offloaded to the CPU, vs fp64 on the CPU."""
    torch.manual_seed(0)
    model = stack(2, sizes.small_width).to(sizes.device, torch.bfloat16)
    swa, ema = ModelAverage(model, use_buffers=False), ModelAverage(model, use_buffers=False)
    offloaded = ModelAverage(model, device="cpu", use_buffers=False)
    history: list[dict[str, torch.Tensor]] = []
    for step in range(8):
        if step:
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.1)
        history.append({n: p.detach().double().cpu() for n, p in model.named_parameters()})
        if step == 0:
            for average in (swa, ema, offloaded):
                average.copy_from_model()
        else:
            swa.interpolate(1.0 / (step + 1))
            offloaded.interpolate(1.0 / (step + 1))
            ema.interpolate(0.1)
    swa_state, ema_state, offloaded_state = swa.state_dict(), ema.state_dict(), offloaded.state_dict()
    swa_error = ema_error = offload_difference = 0.0
    for name in history[0]:
        reference_mean = torch.stack([h[name] for h in history]).mean(0)
        reference_ema = history[0][name]
        for h in history[1:]:
            reference_ema = reference_ema + 0.1 * (h[name] - reference_ema)
        swa_error = max(swa_error, _relative_error(swa_state[name], reference_mean))
        ema_error = max(ema_error, _relative_error(ema_state[name], reference_ema))
        offload_difference = max(offload_difference, _relative_error(offloaded_state[name], swa_state[name].double().cpu()))
    fp32 = all(t.dtype == torch.float32 for t in (*swa_state.values(), *ema_state.values()))
    tolerance = 2e-6 * len(history)  # fp32 rounding of each of the updates
    return [
        Row("bf16 model: averages kept in fp32", str(fp32), ok=fp32),
        Row(
            "SWA mean vs fp64, max rel. error",
            f"{swa_error:.1e} (<= {tolerance:.0e})",
            swa_error <= tolerance,
            {"error": swa_error},
        ),
        Row("EMA vs fp64, max rel. error", f"{ema_error:.1e} (<= {tolerance:.0e})", ema_error <= tolerance, {"error": ema_error}),
        Row(
            "offloaded (pinned staging) vs on-device",
            f"{offload_difference:.1e} (<= 1e-6)",
            offload_difference <= 1e-6,
            {"difference": offload_difference},
        ),
    ]


@torch.no_grad()
def swag_on_device(sizes: Sizes) -> list[Row]:
    """SWAG's second moment and deviation columns of a bf16 model, kept in fp32 on the device, vs fp64 on the CPU."""
    torch.manual_seed(1)
    model = stack(2, sizes.small_width).to(sizes.device, torch.bfloat16)
    mean = ModelAverage(model, use_buffers=False)
    moments = SWAGMoments(model, mean, max_rank=3)
    history: list[dict[str, torch.Tensor]] = []
    for step in range(1, 7):
        if step > 1:
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.1)
        history.append({n: p.detach().double().cpu() for n, p in model.named_parameters()})
        mean.interpolate(1.0 / step)
        moments.update(1.0 / step)
    variance, deviations = moments.variance(), moments.deviations()
    variance_error = deviation_error = 0.0
    for name in moments.names:
        snapshots = torch.stack([h[name] for h in history])
        second = snapshots.square().mean(0)
        reference_variance = (second - snapshots.mean(0).square()).clamp_min(1e-30)
        # the error of E[θ²] − θ̄² in fp32 is relative to E[θ²], not to the (smaller) difference
        difference = (variance[name].double().cpu() - reference_variance).abs().max()
        variance_error = max(variance_error, float(difference / second.abs().max()))
        columns = [snapshots[n] - snapshots[: n + 1].mean(0) for n in range(len(history) - 3, len(history))]
        deviation_error = max(deviation_error, _relative_error(deviations[name], torch.stack(columns)))
    tolerance = 2e-6 * len(history)
    return [
        Row(check, f"{error:.1e} (<= {tolerance:.0e})", error <= tolerance, {"error": error})
        for check, error in (
            ("SWAG variance vs fp64, max error / E[θ²]", variance_error),
            ("SWAG deviations vs fp64, max rel. error", deviation_error),
        )
    ]


def batch_norm_pass(sizes: Sizes) -> list[Row]:
    """The statistics pass on the device against the same pass on the CPU (uneven batches)."""
    torch.manual_seed(0)
    on_cpu = bn_cnn(sizes.small_width // 8 or 2)
    on_device = copy.deepcopy(on_cpu).to(sizes.device)
    images = [torch.randn(size, 3, 16, 16) * 2 + 1 for size in (16, 16, 5)]
    recompute_batch_norm(on_cpu, [(x, None) for x in images])
    recompute_batch_norm(on_device, [(x.to(sizes.device), None) for x in images])
    worst = 0.0
    for name, tensor in on_cpu.state_dict().items():
        if "running" in name:
            worst = max(worst, _relative_error(on_device.state_dict()[name], tensor.double()))
    return [Row("batch-norm pass vs the CPU pass, max rel.", f"{worst:.1e} (<= 1e-4)", worst <= 1e-4, {"difference": worst})]


class _KillAt(Callback):
    def __init__(self, batch: int) -> None:
        self.batch = batch

    def batch_end(self, state, logger) -> None:  # type: ignore[no-untyped-def]
        if state.timestamp.batch_count == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


def resume_child(arguments: list[str]) -> int:
    """``--child resume FOLDER KILL_AT DEVICE``: trains (killed after batch KILL_AT unless 0), then saves final.pt."""
    folder, kill_at, device = Path(arguments[0]), int(arguments[1]), torch.device(arguments[2])
    data = torch.Generator().manual_seed(7)
    inputs, targets = torch.randn(96, 6, generator=data), torch.randint(0, 3, (96,), generator=data)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(32, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    swa = SWA(swa_start="0.25dur", swa_end="0.75dur", update_interval="2ba", swa_lr=0.02)
    trainer = Trainer(
        model,
        DataLoader(TensorDataset(inputs, targets), batch_size=8, shuffle=True),
        "4ep",
        optimizers=optimizer,
        algorithms=[swa],
        callbacks=[_KillAt(kill_at)] if kill_at else [],
        device=device,
        precision="fp16" if device.type == "cuda" else "fp32",
        seed=0,
        progress_bar=False,
        loggers=[],
        save_folder=folder / "checkpoints",
        save_interval="5ba",
        autoresume=True,
    )
    trainer.fit()
    final = {f"model.{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()}
    final |= {f"swa.{k}": v.detach().cpu().clone() for k, v in (swa.averaged_weights() or {}).items()}
    if trainer._scaler is not None:
        final["scaler.scale"] = torch.tensor(trainer._scaler.get_scale())
    torch.save(final, folder / "final.pt")
    return 0


def _launch(folder: Path, kill_at: int, sizes: Sizes) -> int:
    command = [sys.executable, "-m", "benchmarks.device_check", "--child", "resume", str(folder), str(kill_at), str(sizes.device)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300).returncode


def kill_and_resume(sizes: Sizes, folder: Path) -> list[Row]:
    """SIGKILL mid-epoch inside SWA's window, resume: the result equals an uninterrupted run bit for bit."""
    reference, interrupted = folder / "reference", folder / "interrupted"
    codes = (_launch(reference, 0, sizes), _launch(interrupted, KILL_AT, sizes), _launch(interrupted, 0, sizes))
    killed = codes[1] == -signal.SIGKILL
    rows = [Row(f"run killed after batch {KILL_AT} (SIGKILL)", f"exit codes {codes}", killed and codes[0] == codes[2] == 0)]
    if not (interrupted / "final.pt").is_file() or not (reference / "final.pt").is_file():
        return [*rows, Row("resumed run equals the uninterrupted one", "a run wrote nothing", ok=False)]
    left = torch.load(reference / "final.pt", weights_only=True)
    right = torch.load(interrupted / "final.pt", weights_only=True)
    same = sorted(left) == sorted(right) and all(torch.equal(left[k], right[k]) for k in left)
    what = "model, SWA average" + (", GradScaler scale" if "scaler.scale" in left else "")
    return [*rows, Row("resumed run equals the uninterrupted one", f"bit-exact: {same} ({what})", ok=same)]
