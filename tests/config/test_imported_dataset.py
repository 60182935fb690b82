"""A user's dataset by import path takes its own keyword arguments beside the loader keys."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from composer_swa.config import ConfigError, build_run, validate_config

MODULE = """\
import torch
from torch.utils.data import TensorDataset

CALLS = []

def make_dataset(split: str, n: int = 100) -> TensorDataset:
    CALLS.append({"split": split, "n": n})
    generator = torch.Generator().manual_seed(0 if split == "train" else 1)
    return TensorDataset(torch.randn(n, 3, generator=generator), torch.randint(0, 2, (n,), generator=generator))
"""


@pytest.fixture
def my_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "my_data.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_data", None)


def run(train: dict[str, object]) -> dict[str, object]:
    return {
        "model": {"name": "mlp", "hidden": [4], "in_features": 3, "num_classes": 2},
        "data": {"train": train},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "trainer": {"max_duration": "1ep", "progress_bar": False},
    }


def test_the_factory_gets_its_keys_and_the_loader_gets_the_rest(my_data: Path) -> None:
    train = {"name": "my_data:make_dataset", "split": "train", "n": 2000, "batch_size": 64, "drop_last": True}
    parts = build_run(validate_config(run(train), "run.yaml", my_data))
    import my_data as module  # type: ignore[import-not-found]

    assert module.CALLS == [{"split": "train", "n": 2000}]
    loader = parts.train_dataloader
    assert len(loader.dataset) == 2000 and loader.batch_size == 64 and loader.drop_last and len(loader) == 2000 // 64
    expected = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loader.dataset.tensors[0], expected)  # type: ignore[attr-defined]


def test_an_argument_the_factory_does_not_take_is_named_with_what_it_takes(my_data: Path) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(run({"name": "my_data:make_dataset", "split": "train", "m": 3}), "run.yaml", my_data)
    assert error.value.problems == [
        "data.train: my_data:make_dataset takes no argument 'm'; it takes: n, split; "
        "and the keys batch_size, drop_last, num_workers, shuffle"
    ]


def test_the_loader_keys_are_still_checked(my_data: Path) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(run({"name": "my_data:make_dataset", "split": "train", "batch_size": 0}), "run.yaml", my_data)
    assert error.value.problems == ["data.train.batch_size: Input should be greater than or equal to 1 (got 0)"]


def test_the_factory_arguments_are_checked_against_its_annotations(my_data: Path) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(run({"name": "my_data:make_dataset", "split": ["train"], "n": "many"}), "run.yaml", my_data)
    assert error.value.problems == [
        "data.train: split: Input should be a valid string (got ['train']); "
        "n: Input should be a valid integer, unable to parse string as an integer (got 'many')"
    ]
