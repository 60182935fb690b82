"""SWAG under FSDP2 on two gloo processes against one process: the same posterior, and one seed draws one model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.distributed.test_ddp import assert_close, exported, launch, report, wait_all

RUNS = {"fsdp-swag-1": (1, ["fsdp-swag"]), "fsdp-swag-2": (2, ["fsdp-swag", "--parallelism", "fsdp"])}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("swag-fsdp")
    results = wait_all({name: launch(n, arguments, root / name) for name, (n, arguments) in RUNS.items()})
    for name, (returncode, output) in results.items():
        assert returncode == 0, f"{name} exited {returncode}:\n{output[-3000:]}"
    return {name: root / name for name in RUNS}


def test_each_process_keeps_its_shards_and_the_export_equals_one_process(runs: dict[str, Path]) -> None:
    for name in ("model.safetensors", "SWAG-average.safetensors", "SWAG-posterior.safetensors"):
        assert_close(exported(runs["fsdp-swag-2"], name), exported(runs["fsdp-swag-1"], name), atol=1e-5)


def test_one_seed_draws_one_model_on_every_process(runs: dict[str, Path]) -> None:
    one = report(runs["fsdp-swag-1"], 0)["sample"]
    first, second = report(runs["fsdp-swag-2"], 0)["sample"], report(runs["fsdp-swag-2"], 1)["sample"]
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert_close(first, one, atol=1e-5)
    assert any(not torch.equal(first[name], exported(runs["fsdp-swag-2"], "model.safetensors")[name]) for name in first)
