"""``swa-average SNAPSHOT_DIR --method posthoc``: one length, a half-life, a scored sweep, and bad input."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from composer_swa.algorithms.posthoc_ema import PostHocEMA
from composer_swa.averaging.model_average import load_tracked_weights, named_state_tensors
from composer_swa.cli.average_parts import check_fits_model
from composer_swa.config import build_run, load_config
from composer_swa.integrations import AlgorithmRunner
from composer_swa.merging.posthoc import reconstruct
from tests.cli.helpers import CONFIG, invoke
from tests.helpers import train_recording_weights

STEPS = 60
Trained = tuple[Path, Path, dict[int, dict[str, torch.Tensor]]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The config's model trained 60 batches with PostHocEMA (σ_rel 0.05, 0.10, snapshots every 5); its weights by step."""
    root = tmp_path_factory.mktemp("posthoc_cli")
    config = root / "run.yaml"
    config.write_text(CONFIG)
    parts = build_run(load_config(config))
    model, data = parts.model, list(parts.train_dataloader)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    folder = root / "snapshots"
    runner = AlgorithmRunner(
        [PostHocEMA(snapshot_interval="5ba", snapshot_dir=folder)], model, optimizer, data, f"{STEPS}ba", loggers=[]
    )
    runner.fit_start()
    recorded = train_recording_weights(runner, model, optimizer)
    runner.fit_end()
    return config, folder, recorded


def numpy_power_ema(recorded: dict[int, dict[str, torch.Tensor]], name: str, sigma_rel: float) -> np.ndarray:
    """The power EMA in float64, step by step, with γ by bisection on σ_rel² = (γ+1)/((γ+2)²(γ+3))."""
    low, high = 0.0, 1e4
    for _ in range(200):
        gamma = (low + high) / 2.0
        low, high = (gamma, high) if math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3))) > sigma_rel else (low, gamma)
    ema = recorded[1][name].double().numpy()
    for t in range(2, STEPS + 1):
        beta = (1.0 - 1.0 / t) ** (gamma + 1.0)
        ema = beta * ema + (1.0 - beta) * recorded[t][name].double().numpy()
    return ema


def test_a_sigma_rel_writes_the_reconstruction_and_prints_the_fit(trained: Trained, tmp_path: Path) -> None:
    _, folder, _ = trained
    code, out = invoke(folder, "--method", "posthoc", "--sigma-rel", 0.07, "-o", tmp_path / "ema.safetensors")
    assert code == 0, out
    expected = reconstruct(folder, 0.07)
    written = load_file(tmp_path / "ema.safetensors")
    assert sorted(written) == sorted(expected.tensors)
    assert all(torch.equal(written[name], expected.tensors[name]) for name in written)  # the same sum, bit for bit
    assert f"read at step {STEPS}, from 24 snapshots: residual {expected.residual:.2e}" in out
    largest = max(expected.weights.items(), key=lambda item: abs(item[1]))
    assert f"posthoc:   {largest[1]:+.6f}  {largest[0]}" in out
    assert "wrote " in out and "(posthoc over 24 inputs)" in out
    with safe_open(tmp_path / "ema.safetensors", "pt") as file:
        assert file.metadata()["method"] == "posthoc"


def test_a_tracked_sigma_rel_is_its_last_snapshot_and_the_numpy_power_ema(trained: Trained, tmp_path: Path) -> None:
    _, folder, recorded = trained
    code, out = invoke(folder, "--method", "posthoc", "--sigma-rel", 0.1, "-o", tmp_path / "ema.safetensors")
    assert code == 0, out
    written = load_file(tmp_path / "ema.safetensors")
    snapshot = load_file(folder / f"ema-sigma_rel0.1-ba{STEPS:09d}.safetensors")
    for name, tensor in snapshot.items():
        torch.testing.assert_close(written[name], tensor, rtol=0, atol=1e-6)
        if tensor.is_floating_point():
            np.testing.assert_allclose(written[name].double().numpy(), numpy_power_ema(recorded, name, 0.1), atol=2e-6)


def test_a_half_life_is_the_sigma_rel_at_the_last_snapshots_step(trained: Trained, tmp_path: Path) -> None:
    _, folder, _ = trained
    code, out = invoke(folder, "--method", "posthoc", "--half-life", "3ba", "-o", tmp_path / "half.safetensors")
    assert code == 0, out
    sigma_rel = 3.0 / (STEPS * math.log(2.0))  # h = ln2 · σ_rel · t
    assert f"sigma_rel {sigma_rel:.6g} " in out
    expected = reconstruct(folder, sigma_rel)
    written = load_file(tmp_path / "half.safetensors")
    assert all(torch.equal(written[name], expected.tensors[name]) for name in written)


def test_a_sweep_prints_a_table_plots_it_and_writes_the_best(trained: Trained, tmp_path: Path) -> None:
    config, folder, _ = trained
    output = tmp_path / "best.safetensors"
    sweep = ("--sweep", "0.04:0.12:3", "--config", config, "--select", "best")
    code, out = invoke(folder, "--method", "posthoc", *sweep, "-o", output)
    assert code == 0, out
    rows = [(float(s), float(r), float(m)) for s, r, m in re.findall(r"posthoc:\s+([\d.]+)\s+([\d.e+-]+)\s+(-?[\d.]+)", out)]
    assert [row[0] for row in rows] == [0.04, 0.08, 0.12]
    assert rows[1][1] < 1e-2  # 0.08 lies between the tracked 0.05 and 0.10
    best = max(rows, key=lambda row: row[2])[0]
    assert f"best: sigma_rel {best:g}" in out and "<- best" in out
    assert (tmp_path / "best.sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected = reconstruct(folder, best)
    written = load_file(output)
    for name, tensor in written.items():
        if "running" not in name and "num_batches" not in name:  # batch norm's statistics: recomputed on data.train
            assert torch.equal(tensor, expected.tensors[name]), name
    assert "batch-norm statistics recomputed" in out


def test_a_sweep_without_select_writes_only_its_plot(trained: Trained, tmp_path: Path) -> None:
    config, folder, _ = trained
    plot = tmp_path / "sweep.png"
    code, out = invoke(folder, "--method", "posthoc", "--sweep", "0.05:0.1:2", "--config", config, "--plot", plot)
    assert code == 0, out
    assert plot.is_file() and [path.name for path in tmp_path.iterdir()] == ["sweep.png"]
    assert "wrote" not in out and "plot of the score against sigma_rel written to" in out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--sigma-rel", "0"), "--sigma-rel must lie in (0, 0.3003]"),
        (("--sigma-rel", "0.31"), "--sigma-rel must lie in (0, 0.3003]"),
        (("--sigma-rel", "0.07", "--half-life", "3ba"), "not --sigma-rel and --half-life together"),
        ((), "--method posthoc needs one of --sigma-rel 0.07, --half-life 500ba or --sweep"),
        (("--half-life", "3ep"), "--half-life takes a number of batches such as 500ba"),
        (("--half-life", "1000ba"), "give at most 12ba"),
        (("--sweep", "0.02:0.2"), "--sweep takes START:STOP:COUNT"),
        (("--sweep", "0.2:0.02:5"), "--sweep takes START:STOP:COUNT"),
        (("--sweep", "0.02:0.5:5"), "--sweep's STOP must lie in (0, 0.3003]"),
        (("--sweep", "0.02:0.2:5"), "--sweep scores each length on held-out data: give --config"),
        (("--sigma-rel", "0.07", "--select", "best"), "give --sweep START:STOP:COUNT"),
    ],
)
def test_bad_options_are_usage_errors(trained: Trained, tmp_path: Path, arguments: tuple[str, ...], message: str) -> None:
    _, folder, _ = trained
    code, out = invoke(folder, "--method", "posthoc", *arguments, "-o", tmp_path / "ema.safetensors")
    assert code == 2 and message in " ".join(out.split()), out
    assert list(tmp_path.iterdir()) == []


def test_a_folder_without_an_index_or_with_a_missing_snapshot_is_refused(trained: Trained, tmp_path: Path) -> None:
    _, folder, _ = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = invoke(empty, "--method", "posthoc", "--sigma-rel", 0.07, "-o", tmp_path / "ema.safetensors")
    assert code == 2 and "holds no posthoc_ema.json" in out and "trained with PostHocEMA" in out, out
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    (copy / "ema-sigma_rel0.05-ba000000030.safetensors").unlink()
    code, out = invoke(copy, "--method", "posthoc", "--sigma-rel", 0.07, "-o", tmp_path / "ema.safetensors")
    assert code == 2 and "lists 'ema-sigma_rel0.05-ba000000030.safetensors', which is missing" in out, out
    code, out = invoke(copy / "ema-sigma_rel0.1-ba000000030.safetensors", "--method", "posthoc", "--sigma-rel", 0.07, "-o",
                       tmp_path / "ema.safetensors")  # fmt: skip
    assert code == 2 and "takes one input, the SNAPSHOT_DIR" in out, out
    assert not (tmp_path / "ema.safetensors").exists()


def test_a_model_with_tied_weights_fits_inputs_that_store_the_tied_tensor_once(tmp_path: Path) -> None:
    """A language model's head tied to its embedding: averages and snapshots hold the tensor once."""
    tied = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5, bias=False))
    tied[1].weight = tied[0].weight
    stored = {name: torch.full_like(tensor, 2.0) for name, tensor in named_state_tensors(tied)}
    save_file(stored, tmp_path / "a.safetensors")
    check_fits_model([str(tmp_path / "a.safetensors")], "strict", tied, None)  # refused before: '1.weight' missing
    load_tracked_weights(tied, stored)
    assert tied[1].weight.data_ptr() == tied[0].weight.data_ptr() and bool(tied[1].weight.eq(2.0).all())
    with pytest.raises(RuntimeError, match="Missing key"):  # a tensor really missing is still refused
        load_tracked_weights(torch.nn.Linear(4, 5), {"weight": torch.zeros(5, 4)})
