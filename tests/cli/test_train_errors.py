"""``swa-train`` on bad input: exit 2, one message naming the YAML path, no traceback, nothing written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from composer_swa.cli.train import main

BASE = """\
model: {name: mlp, hidden: [8]}
data:
  train: {name: synthetic, samples: 64, features: 3, classes: 5, batch_size: 16}
optimizer: {name: sgd, lr: 0.1}
trainer: {max_duration: 2ep, progress_bar: false}
"""
#: An aliased structure of 10**8 values in optimizer.lr: 4.2 GB in 60 s of --dry-run before.
BOMB = BASE.replace(
    "optimizer: {name: sgd, lr: 0.1}",
    "optimizer:\n  name: sgd\n  lr: [&a0 [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]"
    + "".join(f", &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8))
    + "]",
)


def refused(tmp_path: Path, text: str, *args: str, dry_run: bool = False) -> str:
    config = tmp_path / "run.yaml"
    config.write_text(text)
    run_dir = tmp_path / "never"
    result = CliRunner().invoke(main, [str(config), "--run-dir", str(run_dir), *args, *(["--dry-run"] if dry_run else [])])
    out = result.output
    assert result.exit_code == 2, (out, result.exception)
    assert "Traceback" not in out and out.count("error:") == 1 and out.startswith("error: ")
    assert not run_dir.exists()
    return out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE.replace("false", "false, seed: 2001-02-30"), "trainer.seed: Input should be a valid integer"),
        (BASE.replace("false", "false, seed: 2001-02-03"), "(got '2001-02-03')"),
        (BASE + "? [a, b]\n: 1\n", "(top level): a mapping key must be a plain value, got a list (line 6, column 3)"),
        (BASE + "extra: " + "[" * 5000 + "\n", "extra[0][0][0]"),
        (BASE.replace("false", "!!bool maybe"), "trainer.progress_bar: cannot read 'maybe' as !!bool"),
        (BASE + f"seed: {'7' * 4300}\n", "seed: an integer of 4,300 digits"),
        (BOMB, "aliases expand this to more than 100,000 values"),
        (BASE.replace("{name: sgd, lr: 0.1}", "&o {name: sgd, lr: [*o]}"), "optimizer: this value contains an alias to itself"),
    ],
    ids=["bad-date", "date", "list-key", "deep", "bool-maybe", "long-int", "alias-bomb", "circular"],
)  # fmt: skip
def test_yaml_the_loader_could_not_handle(tmp_path: Path, text: str, message: str) -> None:
    assert message in refused(tmp_path, text)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.seed=2001-02-30", "trainer.seed: Input should be a valid integer"),
        ("data.train={? [a, b]: 1}", "data.train: a mapping key must be a plain value"),
        ("trainer.seed=" + "[" * 5000, "the YAML nests deeper than 64 levels"),
        ("trainer.progress_bar=!!bool maybe", "trainer.progress_bar: cannot read 'maybe' as !!bool"),
        (f"trainer.seed={'7' * 4300}", "trainer.seed: an integer of 4,300 digits"),
        ("optimizer.lr=0.1x", "optimizer.lr: Input should be a valid number, unable to parse string as a number (got '0.1x')"),
        (
            "trainer.device=tpu",
            "trainer.device: device must be 'cpu', 'gpu', 'cuda', 'cuda:N', 'mps' or a torch.device, got 'tpu'",
        ),
        ("trainer.precision=fp8", "trainer.precision: precision must be one of"),
        ("trainer.max_duration=0ba", "trainer.max_duration: max_duration must be at least one unit of training"),
        ("trainer.max_duration=-1", "trainer.max_duration: Time value must be a finite number >= 0, got -1 'ep'"),
        ("trainer.max_duration=1dur", "trainer.max_duration: max_duration cannot be in 'dur'"),
        (f"trainer.seed={2**64 + 1}", "trainer.seed: Input should be less than or equal to 18446744073709551615"),
        ("trainer.log_interval=5tok", "trainer.log_interval: cannot resolve 5tok to batches"),
        ("trainer.save_interval=0.5ep", "trainer.save_interval: invalid time string '0.5ep'"),
        ("data.train.samples=0", "data.train: building it raised ValueError: samples must be an int >= 1, got 0"),
        ("data.train={name: synthetic, samples: 64, batch_size: 100, drop_last: true}", "data.train.batch_size: 100 is more"),
        ("trainer.sync_batch_norm=true", "trainer: building it raised ValueError: sync_batch_norm=True needs CUDA"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_set_and_values_the_trainer_rejects_at_construction(tmp_path: Path, override: str, message: str) -> None:
    out = refused(tmp_path, BASE, "--set", override)
    assert out.splitlines()[0].endswith("run.yaml is not a valid config:") or out.startswith("error: --set")
    assert message in out


def test_cuda_without_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert "trainer.device: device='cuda' was asked for, but CUDA is not available" in refused(
        tmp_path, BASE, "--set", "trainer.device=cuda"
    )


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_logger_without_its_package_leaves_no_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dry_run: bool
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as when it is not installed: import and find_spec fail
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = refused(tmp_path, BASE + "loggers: [{name: jsonl}, {name: tensorboard}]\n", dry_run=dry_run)
    assert "loggers[1]: the tensorboard logger needs the tensorboard package: pip install tensorboard" in out


def test_a_logger_that_fails_when_built_leaves_no_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found only when the run folder's loggers are built: the folder they started is removed again.
    (tmp_path / "bad_logger.py").write_text(
        "class Broken:\n    def __init__(self, path='x'):\n        raise OSError('no disk')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = refused(tmp_path, BASE + "loggers: [{name: jsonl}, {name: 'bad_logger:Broken'}]\n")
    assert "loggers[1]: building it raised OSError: no disk" in out
    sys.modules.pop("bad_logger", None)


def test_merge_keys_work_in_a_run(tmp_path: Path) -> None:
    text = BASE.replace(
        "  train: {name: synthetic, samples: 64, features: 3, classes: 5, batch_size: 16}",
        "  train: &train {name: synthetic, samples: 64, features: 3, classes: 5, batch_size: 16}\n"
        "  eval: {<<: *train, seed: 1, batch_size: 32}",
    )
    (tmp_path / "run.yaml").write_text(text)
    result = CliRunner().invoke(main, [str(tmp_path / "run.yaml"), "--print-config"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.output)["data"]
    assert data["eval"] == data["train"] | {"seed": 1, "batch_size": 32} and data["train"]["seed"] == 0


def test_a_users_algorithm_argument_of_the_wrong_type_is_named() -> None:
    # GradientClipping(max_norm: float): "x" used to reach `max_norm > 0` inside the user's code.
    examples = Path(__file__).resolve().parents[2] / "examples"
    result = CliRunner().invoke(main, [str(examples / "custom_component.yaml"), "--set", "algorithms[0].max_norm=x", "--dry-run"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        "algorithms[0]: max_norm: Input should be a valid number, unable to parse string as a number (got 'x')" in result.output
    )


def test_a_run_that_diverges_ends_with_one_message_naming_the_batch(tmp_path: Path) -> None:
    """A NaN loss mid-run: exit 1, the NonFiniteError's message, no traceback (before: a traceback)."""
    config = tmp_path / "run.yaml"
    config.write_text(BASE.replace("lr: 0.1}", "lr: 1.0e+30}"))
    result = CliRunner().invoke(main, [str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1, (result.output, result.exception)
    assert "Traceback" not in result.output and result.output.count("error:") == 1
    assert "the training loss is" in result.output and "at batch" in result.output


def test_runs_that_would_checkpoint_into_one_folder_are_refused_before_training(tmp_path: Path) -> None:
    """Two configs with one save_folder would fight over its lock; a --baseline gets its own sub-folder."""
    shared = BASE.replace("progress_bar: false}", f"progress_bar: false, save_folder: {tmp_path / 'ck'}}}")
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(shared)
    second.write_text(shared)
    result = CliRunner().invoke(main, [str(first), str(second), "--run-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "both checkpoint into trainer.save_folder" in result.output, result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ck").exists()
    swa = shared + "algorithms: [{name: swa, swa_start: 0.5dur}]\n"
    first.write_text(swa)
    result = CliRunner().invoke(main, [str(first), "--baseline", "--run-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "ck").glob("*.pt")) == ["ep1-ba4-rank0.pt", "ep2-ba8-rank0.pt", "latest-rank0.pt"]
    assert sorted(p.name for p in (tmp_path / "ck" / "baseline").glob("*.pt")) == [
        "ep1-ba4-rank0.pt",
        "ep2-ba8-rank0.pt",
        "latest-rank0.pt",
    ]
