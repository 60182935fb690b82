from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path

import pytest

from composer_swa.checkpoint import CheckpointNaming, CheckpointOptions
from composer_swa.config import ConfigError, build_run, validate_config
from composer_swa.config.schema import TrainerConfig
from composer_swa.models import CharGPT
from composer_swa.optim import CosineAnnealingWithWarmupScheduler
from composer_swa.state import State
from composer_swa.time import Time, TimeUnit
from composer_swa.trainer import Trainer
from tests.config.helpers import config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_model_arguments_come_from_the_dataset(tmp_path: Path) -> None:
    parts = build_run(validate_config(config(), "t"))
    assert parts.model.layers[1].in_features == 3 and parts.model.layers[-1].out_features == 5
    text = tmp_path / "text.txt"
    text.write_text("abcabcabd" * 40)
    lm = config(model={"name": "char_gpt", "width": 16, "heads": 2},
                data={"train": {"name": "char_text", "path": str(text), "block_size": 8}})  # fmt: skip
    model = build_run(validate_config(lm, "t")).model
    assert isinstance(model, CharGPT) and model.token_embedding.num_embeddings == 4 and model.block_size == 8


def test_a_composer_scheduler_from_yaml_follows_its_formula() -> None:
    """An 'ep' warm-up from YAML, then a cosine to alpha_f; the LR after each counted batch is the formula's."""
    scheduler = {"name": "cosineannealingwithwarmupscheduler", "t_warmup": "1ep", "alpha_f": 0.1}
    parts = build_run(validate_config(config(scheduler=scheduler), "t"))
    assert isinstance(parts.scheduler, CosineAnnealingWithWarmupScheduler) and parts.scheduler.t_warmup == Time(1, "ep")
    state = State(parts.model, "4ep", parts.train_dataloader, optimizers=[parts.optimizer], schedulers=[parts.scheduler])
    lrs = []
    for _ in range(20):
        lrs.append(parts.optimizer.param_groups[0]["lr"])
        parts.optimizer.step()
        state.timestamp.advance_batch(samples=8, tokens=0)
        state.schedulers[0].step()
    total, warmup = 20, 5  # 40 samples / 8 = 5 batches an epoch, 4 epochs; the warm-up is 1ep = 5 batches
    expected = [
        0.1 * t / warmup if t < warmup else 0.1 * (0.1 + 0.9 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup))) / 2)
        for t in range(20)
    ]
    assert lrs == pytest.approx(expected)


def test_a_composer_schedulers_time_arguments_are_checked_with_the_yaml_path() -> None:
    bad = config(scheduler={"name": "multistepscheduler", "milestones": ["0.3dur", "1.5ep"]})
    with pytest.raises(ConfigError, match=r"milestones\[1\].*'1.5ep'.*whole units"):
        build_run(validate_config(bad, "t"))
    with pytest.raises(ConfigError, match="t_warmup"):
        validate_config(config(scheduler={"name": "constantwithwarmupscheduler", "t_warmup": "5minutes"}), "t")


def test_every_trainer_key_reaches_the_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    received: dict[str, object] = {}
    monkeypatch.setattr("composer_swa.config.build.Trainer", lambda *args, **kwargs: received.update(kwargs))
    keys = {"grad_accum": 2, "log_interval": "3ba", "step_schedulers_every_batch": False, "save_num_checkpoints_to_keep": 4}
    build_run(validate_config(config(trainer={"max_duration": "4ep", "progress_bar": False} | keys), "t")).trainer()
    objects = {"eval_dataloader", "optimizers", "schedulers", "algorithms", "callbacks", "loggers"}
    assert set(received) == set(inspect.signature(Trainer).parameters) - {"model", "train_dataloader", "max_duration", "seed",
                                                                          "run_dir", "loss_fn"}  # fmt: skip
    assert set(received) - objects == set(TrainerConfig.model_fields) - {"max_duration", "seed", "run_dir"}
    assert {key: received[key] for key in keys} == keys and received["progress_bar"] is False


def test_the_checkpoint_keys_reach_the_checkpointer_as_one_frozen_object(tmp_path: Path) -> None:
    keys = {"save_folder": str(tmp_path / "{run_name}"), "save_interval": "3ba", "save_num_checkpoints_to_keep": 2,
            "autoresume": True, "run_name": "r1", "save_filename": "b{batch}.pt"}  # fmt: skip
    trainer = build_run(validate_config(config(trainer={"max_duration": "4ep", "progress_bar": False} | keys), "t")).trainer()
    options = trainer.checkpointer.options
    naming = CheckpointNaming("b{batch}.pt", "latest-rank{rank}.pt", "r1")
    assert options == CheckpointOptions(tmp_path / "r1", Time(3, TimeUnit.BATCH), 2, True, None, False, naming)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.save_folder = None  # type: ignore[misc]


def test_a_failing_constructor_is_reported_with_its_path() -> None:
    with pytest.raises(ConfigError, match=r"data.train: building it raised FileNotFoundError: char_text: no text file at"):
        build_run(validate_config(config(data={"train": {"name": "char_text", "path": "/nonexistent.txt"}}), "t"))
    text_data = {"train": {"name": "char_text", "path": str(EXAMPLES / "my_components.py")}}  # has no in_features
    with pytest.raises(ConfigError, match=r"model.in_features: required, and the training dataset does not have it"):
        build_run(validate_config(config(data=text_data, model={"name": "mlp", "num_classes": 3}), "t"))


def test_import_path_components_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    run = validate_config(
        config(
            model={"name": "my_components:WideMLP", "width": 4},
            algorithms=[{"name": "my_components:GradientClipping", "max_norm": 0.5}],
        ),
        "t",
        config_dir=EXAMPLES,
    )
    parts = build_run(run, EXAMPLES)
    assert type(parts.model).__name__ == "WideMLP" and parts.algorithms[0].max_norm == 0.5
    with pytest.raises(ConfigError, match=r"algorithms\[0\].*GradientClipping takes no argument 'max_nrm'; it takes: max_norm"):
        validate_config(config(algorithms=[{"name": "my_components:GradientClipping", "max_nrm": 1}]), "t", config_dir=EXAMPLES)
