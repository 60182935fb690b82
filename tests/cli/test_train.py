"""``swa-train`` end to end, through click's runner: outputs, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from composer_swa.cli.train import main
from composer_swa.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICK = ["--set", "trainer.max_duration=5ep", "--set", "trainer.eval_interval=5ep", "--set", "trainer.progress_bar=false"]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_config_builds(name: str) -> None:
    code, out = invoke(str(EXAMPLES / name), "--dry-run")
    assert code == 0, out
    assert "FIT_START checks passed" in out and "nothing written" in out


def test_a_run_writes_its_folder_and_compares_with_the_baseline(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, out = invoke(str(EXAMPLES / "mnist1d_swa.yaml"), *QUICK, "--baseline", "--run-dir", str(run_dir), "--plot")
    assert code == 0, out
    for folder in (run_dir, run_dir / "baseline"):
        assert {p.name for p in folder.iterdir()} >= {"config.yaml", "metrics.jsonl", "model.safetensors", "summary.json"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["batches"] == 200 and summary["algorithms"]["SWA"]["window_batches"] == [140, 200]
    assert summary["algorithms"]["SWA"]["n_averaged"] == 2  # the epoch ends at batches 160 and 200
    assert summary["final_metrics"]["eval/accuracy"] > 0.2  # chance is 0.1
    assert json.loads((run_dir / "baseline" / "summary.json").read_text())["algorithms"] == {}
    # The table shows both runs' final accuracy.
    table = out[out.index("with algorithms") :]
    assert f"{summary['final_metrics']['eval/accuracy']:.4f}" in table and "baseline (no algorithms)" in table
    # The resolved config reruns as it is, and the weights load as safetensors.
    assert load_config(run_dir / "config.yaml").algorithms[0].swa_start == "0.7dur"  # type: ignore[union-attr]
    weights = load_file(run_dir / "model.safetensors")
    assert all(isinstance(t, torch.Tensor) for t in weights.values()) and "classifier.weight" in weights
    assert (run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("SWA: the model now holds the average" in r.get("message", "") for r in records)


def test_print_config_round_trips(tmp_path: Path) -> None:
    code, out = invoke(str(EXAMPLES / "char_lm_lawa.yaml"), "--print-config", "--set", "algorithms[0].window=7")
    assert code == 0, out
    printed = yaml.safe_load(out)
    assert printed["algorithms"][0] == {
        "name": "lawa", "window": 7, "update_interval": "25ba", "lawa_start": "0.5dur",
        "replace_at_fit_end": True, "eval_with_average": True, "use_buffers": True,
    }  # fmt: skip
    reread = load_config(write(tmp_path, out)).model_dump(mode="json")
    assert reread == load_config(EXAMPLES / "char_lm_lawa.yaml", ["algorithms[0].window=7"]).model_dump(mode="json")


BAD = """\
model: {name: mnist1d_cnn, batch_nrm: true}
data:
  train: {name: mnist1d, split: train, batch_size: 0}
optimizer: {name: sgdd, lr: 0.1}
algorithms:
  - {name: swa, swa_start: 0.7dr}
  - {name: ema, half_life: 10ba, smoothing: 0.9}
  - {name: "no_such_module:Thing"}
trainer: {max_duration: 4ep}
"""


def test_every_config_error_in_one_message_with_its_yaml_path(tmp_path: Path) -> None:
    run_dir = tmp_path / "never"
    code, out = invoke(write(tmp_path, BAD), "--run-dir", str(run_dir))
    assert code == 2 and "Traceback" not in out
    lines = out.splitlines()
    assert lines[0].endswith("run.yaml is not a valid config:")
    expected = [
        "model: unknown key 'batch_nrm' (did you mean 'batch_norm'?)",
        "data.train.batch_size: Input should be greater than or equal to 1 (got 0)",
        "optimizer: unknown optimizer: name must be one of",
        "algorithms[0].swa_start: invalid time string '0.7dr'",
        "algorithms[1]: give exactly one of half_life and smoothing",
        "algorithms[2]: cannot import module 'no_such_module' for 'no_such_module:Thing'",
    ]
    for line, start in zip(lines[1:], expected, strict=True):
        assert line.strip().startswith(start), line
    assert "got 'sgdd'" in out
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: {name: mlp\ndata: [1\n", "YAML syntax error at line 2, column 5"),
        ("model: {name: mlp}\nmodel: {name: mlp}\n", "line 2, column 1: the key 'model' appears twice"),
        ("- just\n- a list\n", "must hold a mapping of sections"),
        ("model: {name: mlp}\n", "data: required, but missing"),
    ],
)
def test_yaml_problems_exit_2_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    code, out = invoke(write(tmp_path, text))
    assert code == 2 and message in out and "Traceback" not in out


def test_missing_file_and_bad_override(tmp_path: Path) -> None:
    code, out = invoke(str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such file" in out
    code, out = invoke(str(EXAMPLES / "mnist1d_sgd.yaml"), "--set", "trainer")
    assert code == 2 and "--set 'trainer': expected key.path=value" in out


def test_import_path_error_names_the_attribute(tmp_path: Path) -> None:
    code, out = invoke(str(EXAMPLES / "custom_component.yaml"), "--set", "model.name=my_components:Missing", "--dry-run")
    assert code == 2 and "model: module 'my_components' has no attribute 'Missing'" in out


def test_refusals_at_fit_start_write_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "never"
    conflict = ["--set", "algorithms[1]={name: swa, update_interval: 1ba}", "--set", "algorithms[2]={name: swa}"]
    code, out = invoke(str(EXAMPLES / "custom_component.yaml"), *conflict, "--run-dir", str(run_dir))
    assert code == 2 and "refused at FIT_START" in out and "both take charge of" in out
    code, out = invoke(str(EXAMPLES / "mnist1d_swa.yaml"), "--set", "algorithms[0].swa_start=40ep", "--run-dir", str(run_dir))
    assert code == 2 and "swa_start must be before swa_end" in out
    assert not run_dir.exists()


def test_help_shows_examples() -> None:
    code, out = invoke("--help")
    assert code == 0 and "swa-train examples/mnist1d_swa.yaml --baseline" in out and "plot" in out


def test_plot_of_a_folder_without_metrics_exits_2(tmp_path: Path) -> None:
    code, out = invoke("plot", str(tmp_path))
    assert code == 2 and "no metrics.jsonl" in out


RESUMABLE = """\
model: {name: mlp, hidden: [16]}
data:
  train: {name: synthetic, samples: 256, batch_size: 32}
  eval: {name: synthetic, samples: 64, seed: 1}
optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
algorithms: [{name: ema, half_life: 4ba}]
trainer: {max_duration: 2ep, save_folder: SAVE, save_interval: 4ba, save_num_checkpoints_to_keep: 2, progress_bar: false}
"""


def test_a_yaml_run_checkpoints_and_a_longer_run_resumes_it_exactly(tmp_path: Path) -> None:
    config = write(tmp_path, RESUMABLE.replace("SAVE", str(tmp_path / "checkpoints")))

    code, out = invoke(config, "--run-dir", str(tmp_path / "short"))
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == [
        "ep1-ba12-rank0.pt",
        "ep2-ba16-rank0.pt",
        "latest-rank0.pt",
    ]
    exported = json.loads((tmp_path / "short" / "export.json").read_text())
    assert sorted(exported["files"]) == ["EMA-average.safetensors", "EMA-training.safetensors", "model.safetensors"]

    longer = ["--set", "trainer.max_duration=4ep", "--set", "trainer.autoresume=true"]
    code, out = invoke(config, *longer, "--run-dir", str(tmp_path / "resumed"))
    assert code == 0, out
    messages = (tmp_path / "resumed" / "metrics.jsonl").read_text()
    assert "resumed from" in messages and "ep2-ba16-rank0.pt" in messages

    uninterrupted = ["--set", "trainer.max_duration=4ep", "--set", f"trainer.save_folder={tmp_path / 'other'}"]
    code, out = invoke(config, *uninterrupted, "--run-dir", str(tmp_path / "whole"))
    assert code == 0, out
    resumed, whole = load_file(tmp_path / "resumed" / "model.safetensors"), load_file(tmp_path / "whole" / "model.safetensors")
    assert all(torch.equal(resumed[name], whole[name]) for name in whole)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.save_num_checkpoints_to_keep=0", "save_num_checkpoints_to_keep must be -1 (keep all) or a count >= 1, got 0"),
        ("trainer.load_path=missing.pt", "trainer: load_path 'missing.pt' does not exist"),
        ("trainer.save_interval=often", "trainer.save_interval"),
    ],
)
def test_bad_checkpoint_keys_exit_2_naming_the_key(tmp_path: Path, override: str, message: str) -> None:
    code, out = invoke(write(tmp_path, RESUMABLE.replace("SAVE", str(tmp_path))), "--set", override, "--dry-run")
    assert code == 2 and "Traceback" not in out
    assert message in out
