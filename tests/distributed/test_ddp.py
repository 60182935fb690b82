"""Two processes on gloo against one: the same global batch gives the same weights and averages.

Every run is a real ``torchrun`` launch of :mod:`tests.distributed.ddp_run`; the launches start at
once in a module fixture, so the file costs about as much as its slowest run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from composer_swa.checkpoint import list_checkpoints
from tests.distributed.ddp_run import dataset

REPOSITORY = Path(__file__).resolve().parents[2]
KILL_AT = 10  # epoch 3, batch 2 of 4, inside SWA's window; the last checkpoint is at batch 9

FIRST_WAVE = {
    "swa-1": (1, ["swa"]),
    "swa-2": (2, ["swa"]),
    "bn-2": (2, ["bn"]),
    "fsdp-ema-1": (1, ["fsdp-ema"]),
    "fsdp-ema-2": (2, ["fsdp-ema", "--parallelism", "fsdp"]),
    "resume-reference": (2, ["resume"]),
    "resume-killed": (2, ["resume", "--kill-at", str(KILL_AT)]),
    "resume-terminated": (2, ["resume", "--term-at", str(KILL_AT)]),
    "fsdp-ema-killed": (2, ["fsdp-ema", "--parallelism", "fsdp", "--kill-at", str(KILL_AT)]),
}
MIDWAY = "ep2-ba9-rank0.pt"  # mid-epoch 3 (4 batches an epoch), inside SWA's window
SECOND_WAVE = {
    "resume-killed": (2, ["resume"]),
    "resume-terminated": (2, ["resume"]),
    "fsdp-ema-killed": (2, ["fsdp-ema", "--parallelism", "fsdp"]),
    # A checkpoint written by 2 processes, resumed by 1, and the other way round.
    "swa-1-from-2": (1, ["swa", "--load-path", f"../swa-2/run/checkpoints/{MIDWAY}"]),
    "swa-2-from-1": (2, ["swa", "--load-path", f"../swa-1/run/checkpoints/{MIDWAY}"]),
}


def launch(world_size: int, arguments: list[str], out: Path) -> subprocess.Popen[str]:
    case, *options = arguments
    options = [str((out / option).resolve()) if option.startswith("../") else option for option in options]
    script = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world_size}"]
    command = [*script, "-m", "tests.distributed.ddp_run", case, str(out), *options]
    return subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_all(processes: dict[str, subprocess.Popen[str]]) -> dict[str, tuple[int, str]]:
    results = {}
    for name, process in processes.items():
        output, _ = process.communicate(timeout=300)
        results[name] = (process.returncode, output)
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("distributed")
    first = wait_all({name: launch(n, arguments, root / name) for name, (n, arguments) in FIRST_WAVE.items()})
    for name, (returncode, output) in first.items():
        expected = 1 if name.endswith("-killed") else 0  # torchrun reports the SIGKILLed worker
        assert returncode == expected, f"{name} exited {returncode}:\n{output[-3000:]}"
    (root / "first-wave-checkpoints").write_text(
        "\n".join(f"{name} {[p.name for p in list_checkpoints(root / name / 'run' / 'checkpoints')]}" for name in SECOND_WAVE)
    )
    second = wait_all({name: launch(n, arguments, root / name) for name, (n, arguments) in SECOND_WAVE.items()})
    for name, (returncode, output) in second.items():
        assert returncode == 0, f"resuming {name} exited {returncode}:\n{output[-3000:]}"
        assert "resumed from" in output, output[-3000:]
    return {name: root / name for name in {**FIRST_WAVE, **SECOND_WAVE}}


def exported(run: Path, name: str) -> dict[str, torch.Tensor]:
    folder = run / "run" / "final"
    return load_file(folder / name if folder.is_dir() else run / "run" / "checkpoints" / "final" / name)


def report(run: Path, rank: int) -> dict:
    return torch.load(run / "reports" / f"rank{rank}.pt", weights_only=True)


def assert_close(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor], atol: float) -> None:
    assert sorted(left) == sorted(right)
    worst = {name: float((left[name].double() - right[name].double()).abs().max()) for name in left}
    assert max(worst.values()) <= atol, worst


def test_two_process_swa_equals_one_process_with_the_same_global_batch(runs: dict[str, Path]) -> None:
    for name in ("model.safetensors", "SWA-average.safetensors"):
        assert_close(exported(runs["swa-2"], name), exported(runs["swa-1"], name), atol=1e-6)
    # Time strings count global batches: both ran 5 epochs of 4 batches over 64 samples each.
    assert report(runs["swa-2"], 0)["timestamp"] == report(runs["swa-1"], 0)["timestamp"]
    assert report(runs["swa-2"], 0)["timestamp"]["sample_count"] == 5 * 64
    # Evaluation is reduced over both shards of the eval set: the metrics of the whole set.
    assert report(runs["swa-2"], 0)["eval"] == pytest.approx(report(runs["swa-1"], 0)["eval"], abs=1e-6)
    assert report(runs["swa-2"], 1)["eval"] == report(runs["swa-2"], 0)["eval"]


@pytest.mark.parametrize(("resumed", "reference"), [("swa-1-from-2", "swa-1"), ("swa-2-from-1", "swa-2")])
def test_a_checkpoint_moves_between_world_sizes(runs: dict[str, Path], resumed: str, reference: str) -> None:
    saved = torch.load(runs[reference] / "run" / "checkpoints" / MIDWAY, weights_only=True)
    assert not [key for key in saved["state"]["model"] if key.startswith("module.")]  # no wrapper prefixes
    for name in ("model.safetensors", "SWA-average.safetensors"):
        assert_close(exported(runs[resumed], name), exported(runs[reference], name), atol=1e-6)


def test_batch_norm_statistics_after_the_swa_pass_are_the_full_dataset_statistics_on_every_process(
    runs: dict[str, Path],
) -> None:
    weights = exported(runs["bn-2"], "model.safetensors")
    inputs = dataset().tensors[0].double().numpy()
    # The averaged first layer's outputs over all 64 samples, in NumPy: what the batch norm normalizes.
    hidden = inputs @ weights["0.weight"].double().numpy().T + weights["0.bias"].double().numpy()
    mean, var = hidden.mean(axis=0), hidden.var(axis=0, ddof=1)
    for rank in (0, 1):
        statistics = report(runs["bn-2"], rank)["batch_norm"]
        np.testing.assert_allclose(statistics["1.running_mean"].double().numpy(), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(statistics["1.running_var"].double().numpy(), var, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights["1.running_var"].double().numpy(), var, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("interrupted", "reference", "average"),
    [
        ("resume-killed", "resume-reference", "SWA"),
        ("resume-terminated", "resume-reference", "SWA"),
        ("fsdp-ema-killed", "fsdp-ema-2", "EMA"),  # each process saved and resumes its own shards
    ],
)
def test_interrupted_two_process_run_resumes_exactly(
    runs: dict[str, Path], interrupted: str, reference: str, average: str
) -> None:
    listing = (runs[interrupted].parent / "first-wave-checkpoints").read_text()
    newest = "ep2-ba10-rank0.pt" if interrupted == "resume-terminated" else MIDWAY  # SIGTERM to process 1 saves at once
    assert f"'{newest}']" in listing.split(interrupted)[1].splitlines()[0]
    for name in ("model.safetensors", f"{average}-average.safetensors"):
        resumed, reference_weights = exported(runs[interrupted], name), exported(runs[reference], name)
        different = [key for key in reference_weights if not torch.equal(resumed[key], reference_weights[key])]
        assert not different, f"{name}: not bit-for-bit equal: {different}"


def test_two_process_fsdp2_ema_matches_one_process_ema(runs: dict[str, Path]) -> None:
    for name in ("model.safetensors", "EMA-average.safetensors", "EMA-training.safetensors"):
        assert_close(exported(runs["fsdp-ema-2"], name), exported(runs["fsdp-ema-1"], name), atol=1e-6)


@pytest.mark.parametrize("name", ["swa-2", "bn-2", "fsdp-ema-2", "resume-reference"])
def test_process_zero_alone_writes(runs: dict[str, Path], name: str) -> None:
    run_folder = str(runs[name] / "run")
    written_by_one = [path for path in report(runs[name], 1)["written"] if path.startswith(run_folder)]
    written_by_zero = [path for path in report(runs[name], 0)["written"] if path.startswith(run_folder)]
    assert written_by_one == []
    assert any(path.endswith("model.safetensors") or "model.safetensors" in path for path in written_by_zero)
