"""The schema of a run: what a YAML config may say, checked all at once before anything runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from composer_swa.checkpoint import Checkpointer
from composer_swa.config.builtins import ALGORITHMS, DATASETS, LOGGERS, MODELS, OPTIMIZERS, SCHEDULERS
from composer_swa.config.components import ImportedComponent, TimeString, _Strict, component_union, signature_model

__all__ = ["DataConfig", "LoaderOptions", "RunConfig", "TrainerConfig"]


class LoaderOptions(_Strict):
    """How a dataset is batched: the ``DataLoader`` keys beside the dataset's own arguments."""

    batch_size: int = Field(64, ge=1)
    shuffle: bool | None = None  # None: shuffle the training data, not the evaluation data
    num_workers: int = Field(0, ge=0)
    drop_last: bool = False


class ImportedDataset(ImportedComponent, LoaderOptions):
    """A user's dataset factory by import path, plus the loader keys."""


def _models(registry: dict[str, Any], kind: str, **options: Any) -> dict[str, Any]:
    return {key: signature_model(factory, f"{kind}[{key}]", **options) for key, factory in registry.items()}


Dataset = component_union("dataset", _models(DATASETS, "dataset", base=LoaderOptions), imported=ImportedDataset)
Model = component_union("model", _models(MODELS, "model", optional=True))
Optimizer = component_union("optimizer", _models(OPTIMIZERS, "optimizer", skip=frozenset({"params"})))
Scheduler = component_union("scheduler", _models(SCHEDULERS, "scheduler", skip=frozenset({"optimizer", "total_batches"})))
Algorithm = component_union("algorithm", _models(ALGORITHMS, "algorithm", construct_to_check=True))
Callback = component_union("callback", {})
Logger = component_union("logger", _models(LOGGERS, "logger"))


class DataConfig(_Strict):
    """``train`` and an optional ``eval`` dataset, each with its loader keys."""

    train: Dataset  # type: ignore[valid-type]
    eval: Dataset | None = None  # type: ignore[valid-type]


class TrainerConfig(_Strict):
    """The keyword arguments of :class:`~composer_swa.Trainer` that a config can set."""

    max_duration: TimeString
    eval_interval: TimeString = "1ep"
    seed: int | None = 0
    device: str | None = None
    precision: str | None = None
    grad_accum: int = Field(1, ge=1)
    log_interval: TimeString = "50ba"
    step_schedulers_every_batch: bool = True
    progress_bar: bool = True
    run_dir: str | None = None
    save_folder: str | None = None
    save_interval: TimeString = "1ep"
    save_num_checkpoints_to_keep: int = -1
    autoresume: bool = False
    load_path: str | None = None
    load_weights_only: bool = False
    parallelism: Literal["ddp", "fsdp"] | None = None  # under torchrun / --nproc; None means "ddp" there
    sync_batch_norm: bool = False

    @model_validator(mode="after")
    def _check_checkpointing(self) -> TrainerConfig:
        try:  # the Trainer's own checks, so a bad key is reported with its path before anything runs
            Checkpointer(
                self.save_folder,
                self.save_interval,
                self.save_num_checkpoints_to_keep,
                self.autoresume,
                self.load_path,
                self.load_weights_only,
            )
        except FileNotFoundError as error:
            raise ValueError(str(error)) from None
        return self


class RunConfig(_Strict):
    """A whole run. Every component is ``{name: ..., <keyword arguments>}``; ``name`` is a built-in
    (see :mod:`composer_swa.config.builtins`) or an import path ``package.module:callable``."""

    model: Model  # type: ignore[valid-type]
    data: DataConfig
    optimizer: Optimizer  # type: ignore[valid-type]
    scheduler: Scheduler | None = None  # type: ignore[valid-type]
    algorithms: list[Algorithm] = Field(default_factory=list)  # type: ignore[valid-type]
    callbacks: list[Callback] = Field(default_factory=list)  # type: ignore[valid-type]
    trainer: TrainerConfig
    loggers: list[Logger] | None = None  # type: ignore[valid-type]  # None: console + metrics.jsonl
