"""The YAML schema is generated from the constructors, so the two cannot drift apart."""

from __future__ import annotations

import inspect

import pytest

from composer_swa import EMA, SWA
from composer_swa.config import ConfigError, validate_config
from composer_swa.config.builtins import ALGORITHMS, MODELS
from composer_swa.config.schema import TrainerConfig
from composer_swa.trainer import Trainer

BASE = {
    "model": {"name": "mlp", "hidden": [8]},
    "data": {"train": {"name": "synthetic", "samples": 32, "features": 4, "classes": 2, "batch_size": 8}},
    "optimizer": {"name": "SGD", "lr": 0.1},
    "trainer": {"max_duration": "2ep"},
}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_algorithm_keys_are_the_constructor_arguments(name: str) -> None:
    config = validate_config({**BASE, "algorithms": [{"name": name}]}, "test")
    schema_keys = set(type(config.algorithms[0]).model_fields) - {"name"}
    assert schema_keys == set(inspect.signature(ALGORITHMS[name]).parameters)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_keys_are_the_constructor_arguments(name: str) -> None:
    config = validate_config({**BASE, "model": {"name": name}}, "test")
    assert set(type(config.model).model_fields) - {"name"} == set(inspect.signature(MODELS[name]).parameters)


def test_defaults_match_the_python_defaults() -> None:
    config = validate_config({**BASE, "algorithms": [{"name": "SWA"}, {"name": "ema", "smoothing": 0.5}]}, "test")
    swa, ema = config.algorithms
    for field, parameter in inspect.signature(SWA).parameters.items():
        assert getattr(swa, field) == parameter.default, field
    assert ema.ema_start == inspect.signature(EMA).parameters["ema_start"].default


def test_trainer_keys_are_the_trainer_arguments_a_yaml_value_can_give() -> None:
    objects = {"model", "train_dataloader", "eval_dataloader", "optimizers", "schedulers", "loss_fn", "algorithms", "callbacks",
               "loggers"}  # fmt: skip
    assert set(TrainerConfig.model_fields) == set(inspect.signature(Trainer).parameters) - objects
    assert set(TrainerConfig.model_fields) == {
        "max_duration", "eval_interval", "seed", "device", "precision", "grad_accum", "log_interval",
        "step_schedulers_every_batch", "progress_bar", "run_dir", "save_folder", "save_interval",
        "save_num_checkpoints_to_keep", "autoresume", "load_path", "load_weights_only", "parallelism", "sync_batch_norm",
        "device_train_microbatch_size", "log_to_console", "console_log_interval", "run_name", "save_filename",
        "save_latest_filename", "save_overwrite", "train_subset_num_batches", "eval_subset_num_batches",
    }  # fmt: skip


def test_trainer_defaults_match_the_python_defaults_but_a_config_run_is_seeded() -> None:
    trainer = validate_config(BASE, "test").trainer
    for field, parameter in inspect.signature(Trainer).parameters.items():
        if field in TrainerConfig.model_fields and field not in ("max_duration", "seed"):
            assert getattr(trainer, field) == parameter.default, field
    assert trainer.seed == 0 and inspect.signature(Trainer).parameters["seed"].default is None


def test_names_are_case_insensitive_and_time_fields_take_ints_as_batches() -> None:
    config = validate_config(
        {**BASE, "optimizer": {"name": "AdamW", "lr": 1e-3}, "algorithms": [{"name": "SWA", "swa_start": 5}]}, "t"
    )
    assert config.optimizer.name == "AdamW" and config.algorithms[0].swa_start == 5


def test_unknown_top_level_section_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'algorithm' \(did you mean 'algorithms'\?\)"):
        validate_config({**BASE, "algorithm": []}, "test")


def test_run_config_rejects_what_it_does_not_know_at_every_level() -> None:
    bad = {**BASE, "trainer": {"max_duration": "2ep", "max_epochs": 3}, "data": {**BASE["data"], "test": {}}}
    with pytest.raises(ConfigError) as error:
        validate_config(bad, "test")
    assert len(error.value.problems) == 2
    assert any(p.startswith("trainer: unknown key 'max_epochs'") for p in error.value.problems)
    assert any(p.startswith("data: unknown key 'test'") for p in error.value.problems)
