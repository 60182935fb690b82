"""The schema of a run: what a YAML config may say, checked all at once before anything runs."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field, ValidationInfo, create_model, field_validator, model_validator

from composer_swa.checkpoint.options import CheckpointOptions
from composer_swa.config.builtins import ALGORITHMS, DATASETS, LOGGERS, MODELS, OPTIMIZERS, SCHEDULERS
from composer_swa.config.components import (
    ImportedComponent,
    _not_bool,
    _Strict,
    component_union,
    signature_fields,
    signature_model,
)
from composer_swa.time import TimeUnit, as_time
from composer_swa.trainer import Trainer
from composer_swa.trainer.checks import resolve_device
from composer_swa.trainer.precision import check_precision

__all__ = ["DataConfig", "LoaderOptions", "RunConfig", "TrainerConfig"]


class LoaderOptions(_Strict):
    """How a dataset is batched: the ``DataLoader`` keys beside the dataset's own arguments."""

    batch_size: int = Field(64, ge=1)
    shuffle: bool | None = None  # None: shuffle the training data, not the evaluation data
    num_workers: int = Field(0, ge=0)
    drop_last: bool = False


class ImportedDataset(ImportedComponent, LoaderOptions):
    """A user's dataset factory by import path: its own keyword arguments, plus the loader keys.

    ``{name: "mymodule:make_dataset", split: train, n: 2000, batch_size: 64}`` calls
    ``make_dataset(split="train", n=2000)`` and batches the result by 64. Keys that are not loader
    keys are checked against the factory's signature when the config is validated.
    """

    model_config = ConfigDict(extra="allow")
    also_takes: ClassVar[frozenset[str]] = frozenset(LoaderOptions.model_fields)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        return data  # not the loader's: the factory's keyword arguments (ImportedComponent checks them)


def _models(registry: dict[str, Any], kind: str, **options: Any) -> dict[str, Any]:
    return {key: signature_model(factory, f"{kind}[{key}]", **options) for key, factory in registry.items()}


Dataset = component_union("dataset", _models(DATASETS, "dataset", base=LoaderOptions), imported=ImportedDataset)
Model = component_union("model", _models(MODELS, "model", optional=True))
Optimizer = component_union("optimizer", _models(OPTIMIZERS, "optimizer"))
Scheduler = component_union("scheduler", _models(SCHEDULERS, "scheduler"))
Algorithm = component_union("algorithm", _models(ALGORITHMS, "algorithm", construct_to_check=True))
Callback = component_union("callback", {})
Logger = component_union("logger", _models(LOGGERS, "logger"))


class DataConfig(_Strict):
    """``train`` and an optional ``eval`` dataset, each with its loader keys."""

    train: Dataset  # type: ignore[valid-type]
    eval: Dataset | None = None  # type: ignore[valid-type]


#: The Trainer's arguments that are objects, built from the config's other sections (``loss_fn``:
#: the Trainer's default); every other argument is a ``trainer:`` key.
_TRAINER_OBJECTS = frozenset(
    {"model", "train_dataloader", "eval_dataloader", "optimizers", "schedulers", "loss_fn", "algorithms", "callbacks", "loggers"}
)
#: Where a ``trainer:`` key differs from the Python argument: a config run is seeded (0) unless it says
#: otherwise, and ranges and choices the Trainer checks late are checked with the config.
_TRAINER_REFINED: dict[str, Any] = {
    "seed": (int | None, Field(0, ge=-(2**63), le=2**64 - 1)),  # the range torch.manual_seed takes
    "grad_accum": (int, Field(1, ge=1)),
    "max_duration": (
        Annotated[str | int, BeforeValidator(_not_bool)],
        ...,
    ),  # the Trainer may take it later, in fit(); a config run needs it
    "parallelism": (Literal["ddp", "fsdp"] | None, None),  # under torchrun / --nproc; None means "ddp" there
}
_CHECKPOINT_KEYS = frozenset(inspect.signature(CheckpointOptions.from_arguments).parameters)


class _TrainerChecks(_Strict):
    """The Trainer's own checks, run on the ``trainer:`` keys so a bad one is reported with its path."""

    @field_validator("max_duration", check_fields=False)
    @classmethod
    def _check_max_duration(cls, value: str | int) -> str | int:
        try:
            duration = as_time(value, "max_duration", TimeUnit.EPOCH)
        except TypeError as error:  # pydantic reports only ValueErrors as validation errors
            raise ValueError(str(error)) from None
        if duration.unit is TimeUnit.DURATION:
            raise ValueError(
                f"max_duration cannot be in 'dur' (a fraction of itself), got {value!r}; use 'ep', 'ba', 'sp' or 'tok'"
            )
        if duration.value <= 0:
            raise ValueError(f"max_duration must be at least one unit of training, got {value!r}")
        return value

    @field_validator("device", check_fields=False)
    @classmethod
    def _check_device(cls, value: str | None) -> str | None:
        resolve_device(value)
        return value

    @field_validator("precision", check_fields=False)
    @classmethod
    def _check_precision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "device" in info.data:  # else the device is wrong, and reported
            check_precision(value, resolve_device(info.data["device"]))
        return value

    @model_validator(mode="after")
    def _check_checkpointing(self) -> _TrainerChecks:
        try:
            arguments = self.model_dump(include=set(_CHECKPOINT_KEYS))
            arguments["run_name"] = arguments["run_name"] or "generated-run-name"  # the Trainer generates one
            CheckpointOptions.from_arguments(**arguments)
        except FileNotFoundError as error:
            raise ValueError(str(error)) from None
        return self


if TYPE_CHECKING:  # made from the Trainer's signature when imported, so mypy cannot know its keys
    TrainerConfig = Any
else:
    #: The keyword arguments of :class:`~composer_swa.Trainer` that a config can set.
    TrainerConfig = create_model(
        "TrainerConfig", __base__=_TrainerChecks, **(signature_fields(Trainer, skip=_TRAINER_OBJECTS) | _TRAINER_REFINED)
    )


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
