"""What the Trainer refuses only when it is built is refused when the config is read, naming the YAML key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from composer_swa.config import ConfigError, build_run, validate_config
from tests.config.helpers import config


def trainer(**keys: object) -> dict[str, object]:
    return config(trainer={"max_duration": "4ep", "progress_bar": False} | keys)


def problems(data: dict[str, object], build: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as error:
        run = validate_config(data, "run.yaml")
        if build:
            build_run(run, source="run.yaml").trainer(loggers=[])
    assert str(error.value).startswith("run.yaml is not a valid config:")
    return error.value.problems


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"device": "tpu"}, "trainer.device: device must be 'cpu', 'gpu', 'cuda', 'cuda:N', 'mps' or a torch.device, got 'tpu'"),
        (
            {"precision": "fp8"},
            "trainer.precision: precision must be one of ('fp32', 'amp_fp16', 'amp_bf16') (or 'bf16', 'fp16'), got 'fp8'",
        ),
        ({"precision": "fp16", "device": "cpu"}, "trainer.precision: precision='fp16' needs a CUDA device"),
        ({"max_duration": "0ba"}, "trainer.max_duration: max_duration must be at least one unit of training, got '0ba'"),
        ({"max_duration": -1}, "trainer.max_duration: Time value must be a finite number >= 0, got -1 'ep'"),
        ({"max_duration": "1dur"}, "trainer.max_duration: max_duration cannot be in 'dur'"),
        ({"max_duration": True}, "trainer.max_duration: a time is a string like '5ba' or an int, got True"),
        ({"seed": 2**64}, "trainer.seed: Input should be less than or equal to 18446744073709551615"),
        ({"save_interval": "0.5ep"}, "trainer.save_interval: invalid time string '0.5ep': time unit 'ep' counts whole units"),
        ({"eval_interval": "0.5ba"}, "trainer.eval_interval: invalid time string '0.5ba'"),
    ],
)
def test_trainer_keys_are_checked_with_the_config(keys: dict[str, object], expected: str) -> None:
    assert any(problem.startswith(expected) for problem in problems(trainer(**keys))), problems(trainer(**keys))


def test_cuda_on_a_machine_without_it_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert problems(trainer(device="cuda")) == [
        "trainer.device: device='cuda' was asked for, but CUDA is not available on this machine; use device='cpu'"
    ]


def test_a_fraction_in_a_whole_unit_of_an_algorithm_names_the_key() -> None:
    # pydantic lets a TypeError out as a traceback; it must be a validation error with the path.
    found = problems(config(algorithms=[{"name": "swa", "swa_start": "0.5ep"}]))
    assert found[0].startswith("algorithms[0].swa_start: invalid time string '0.5ep'")


def test_an_optimizer_argument_torch_types_as_a_tensor_union_is_checked() -> None:
    found = problems(config(optimizer={"name": "adam", "lr": "0.1x", "betas": [0.9, "x"]}))
    assert found == [
        "optimizer.lr: Input should be a valid number, unable to parse string as a number (got '0.1x')",
        "optimizer.betas[1]: Input should be a valid number, unable to parse string as a number (got 'x')",
    ]
    optimizer = build_run(validate_config(config(optimizer={"name": "adam", "lr": 1, "betas": [0.8, 0.9]}), "t")).optimizer
    assert optimizer.defaults["lr"] == 1.0 and optimizer.defaults["betas"] == (0.8, 0.9)


@pytest.mark.parametrize(
    ("data", "trainer_keys", "expected"),
    [
        ({"samples": 40, "batch_size": 64, "drop_last": True}, {},
         "data.train.batch_size: 64 is more than the dataset's 40 samples, and drop_last is true"),
        ({"samples": 40}, {"log_interval": "5tok"},
         "trainer.log_interval: cannot resolve 5tok to batches: the tokens per sample are unknown"),
        ({"samples": 40}, {"save_folder": "never", "save_interval": "7tok"}, "trainer.save_interval: cannot resolve 7tok"),
    ],
)  # fmt: skip
def test_problems_found_while_building_name_the_key(
    data: dict[str, object], trainer_keys: dict[str, object], expected: str
) -> None:
    train = {"name": "synthetic", "features": 3, "classes": 5} | data
    run = config(data={"train": train}, trainer={"max_duration": "4ep", "progress_bar": False} | trainer_keys)
    assert problems(run, build=True)[0].startswith(expected)
    assert not Path("never").exists()


def test_an_empty_dataset_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty_data.py").write_text(
        "import torch\nfrom torch.utils.data import TensorDataset\n"
        "def make(n: int = 0):\n    return TensorDataset(torch.zeros(n, 3), torch.zeros(n, dtype=torch.long))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    run = config(model={"name": "mlp", "hidden": [4], "in_features": 3, "num_classes": 2},
                 data={"train": {"name": "empty_data:make"}})  # fmt: skip
    assert problems(run, build=True) == ["data.train: the dataset is empty (0 samples); check its arguments"]
    monkeypatch.delitem(sys.modules, "empty_data")


def test_whatever_the_trainer_still_refuses_is_a_config_error_naming_it() -> None:
    # sync_batch_norm needs CUDA: the Trainer's own check, reported as a config problem, not a traceback.
    found = problems(trainer(sync_batch_norm=True, device="cpu"), build=True)
    assert found[0].startswith("trainer: building it raised ValueError: sync_batch_norm=True needs CUDA")


def test_a_missing_optional_logger_package_is_found_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from composer_swa.config.run_checks import logger_problems

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "tensorboard" else object())
    run = validate_config(config(loggers=[{"name": "console"}, {"name": "TensorBoard"}]), "t")
    assert logger_problems(run) == ["loggers[1]: the tensorboard logger needs the tensorboard package: pip install tensorboard"]
    with pytest.raises(ConfigError, match=r"loggers\[1\]: the tensorboard logger needs"):
        build_run(run)
