"""From a validated :class:`RunConfig` to the objects of a run, and to a :class:`Trainer`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from torch.utils.data import DataLoader, Dataset

from composer_swa.config.builtins import ALGORITHMS, DATASETS, LOGGERS, MODELS, OPTIMIZERS, SCHEDULERS
from composer_swa.config.components import ImportedComponent
from composer_swa.config.loading import ConfigError
from composer_swa.config.run_checks import loader_problems, logger_problems, time_problems
from composer_swa.config.schema import LoaderOptions, RunConfig
from composer_swa.events import Algorithm, Callback
from composer_swa.trainer import Trainer
from composer_swa.trainer.checks import seed_everything

__all__ = ["RunParts", "build_run"]

#: Dataset attributes that fill a model's arguments of the same name when the config leaves them out.
_FROM_DATASET = ("in_features", "num_classes", "vocab_size", "block_size")
_LOADER_KEYS = frozenset(LoaderOptions.model_fields)
#: The ``trainer:`` keys not passed to the Trainer as they are: the seed is applied by build_run, the
#: run folder is the CLI's, max_duration goes by position.
_NOT_PASSED = frozenset({"max_duration", "seed", "run_dir"})
_DEFAULT_PATHS = {"jsonl": "metrics.jsonl", "tensorboard": "tensorboard"}


@dataclass
class RunParts:
    """Everything a run needs except its loggers, which write into the run folder and come last."""

    config: RunConfig
    model: torch.nn.Module
    train_dataloader: DataLoader[Any]
    eval_dataloader: DataLoader[Any] | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    algorithms: list[Algorithm]
    callbacks: list[Callback]
    config_dir: Path | None = None
    #: The config's name in error messages (its file).
    source: str = "the config"

    def trainer(self, loggers: list[Any] | None = None) -> Trainer:
        """The Trainer; ``loggers`` defaults to :meth:`loggers` without a run folder (the console)."""
        settings = self.config.trainer
        arguments = {
            "eval_dataloader": self.eval_dataloader,
            "optimizers": self.optimizer,
            "schedulers": self.scheduler,
            "algorithms": self.algorithms,
            "callbacks": self.callbacks,
            "loggers": self.loggers(None) if loggers is None else loggers,
        }
        arguments |= settings.model_dump(exclude=set(_NOT_PASSED))
        # The config's checks ran; what the Trainer still refuses (an unreadable load_path...) is
        # reported like any other config problem, not as a traceback.
        trainer: Trainer = _construct(
            "trainer", Trainer, arguments, self.model, self.train_dataloader, settings.max_duration, source=self.source
        )
        return trainer

    def loggers(self, run_dir: Path | None) -> list[Any]:
        """The config's loggers; with ``run_dir``, relative paths go inside it (default: console + metrics.jsonl)."""
        configs = self.config.loggers
        if configs is None:
            configs = [_named("console"), _named("jsonl")] if run_dir is not None else [_named("console")]
        loggers = []
        for index, logger in enumerate(configs):
            kwargs = _kwargs(logger)
            if run_dir is not None and "path" in kwargs and not Path(kwargs["path"]).is_absolute():
                kwargs["path"] = run_dir / kwargs["path"]
            elif run_dir is not None and _name(logger).lower() in _DEFAULT_PATHS and "path" not in kwargs:
                kwargs["path"] = run_dir / _DEFAULT_PATHS[_name(logger).lower()]
            factory = _factory(logger, LOGGERS, self.config_dir)
            loggers.append(_construct(f"loggers[{index}]", factory, kwargs, source=self.source))
        return loggers


def _named(name: str) -> BaseModel:
    return ImportedComponent(name=name)


def _name(component: BaseModel) -> str:
    return str(getattr(component, "name"))  # noqa: B009 - every component model has one; mypy sees a union


def _kwargs(component: BaseModel, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    if isinstance(component, ImportedComponent):
        return {key: value for key, value in component.kwargs.items() if key not in exclude}
    return {key: value for key, value in component.model_dump(exclude={"name"} | exclude).items()}


def _factory(component: BaseModel, registry: dict[str, Callable[..., Any]], config_dir: Path | None) -> Callable[..., Any]:
    name = _name(component)
    if ":" in name and isinstance(component, ImportedComponent):
        return component.check(config_dir, skip=frozenset())
    return registry[name.lower()]


def _construct(path: str, factory: Callable[..., Any], kwargs: dict[str, Any], *args: Any, source: str = "the config") -> Any:
    try:
        return factory(*args, **kwargs)
    except ConfigError:
        raise
    except Exception as error:  # the user's code may raise anything; report where it came from
        raise ConfigError(source, [f"{path}: building it raised {type(error).__name__}: {error}"]) from error


def _loader(path: str, component: BaseModel, train: bool, config_dir: Path | None) -> DataLoader[Any]:
    dataset = _construct(path, _factory(component, DATASETS, config_dir), _kwargs(component, exclude=_LOADER_KEYS))
    if not isinstance(dataset, Dataset) and not hasattr(dataset, "__getitem__"):
        raise ConfigError("the config", [f"{path}: {_name(component)} returned {type(dataset).__name__}, not a torch Dataset"])
    options: LoaderOptions = component  # type: ignore[assignment]
    problems = loader_problems(path, dataset, options.batch_size, options.drop_last)
    if problems:
        raise ConfigError("the config", problems)
    shuffle = train if options.shuffle is None else options.shuffle
    loader_options = {"batch_size": options.batch_size, "shuffle": shuffle, "num_workers": options.num_workers}
    loader: DataLoader[Any] = _construct(path, DataLoader, loader_options | {"drop_last": options.drop_last}, dataset)
    return loader


def _model(config: RunConfig, dataset: Any, config_dir: Path | None) -> torch.nn.Module:
    factory = _factory(config.model, MODELS, config_dir)
    accepted = inspect.signature(factory).parameters
    required = {name for name, p in accepted.items() if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD}
    # Required arguments the config left out are None in the schema; the dataset may provide them.
    kwargs = {key: value for key, value in _kwargs(config.model).items() if not (value is None and key in required)}
    for key in _FROM_DATASET:
        if key in accepted and key not in kwargs and hasattr(dataset, key):
            kwargs[key] = getattr(dataset, key)
    missing = sorted(required - set(kwargs))
    if missing:
        raise ConfigError("the config", [f"model.{key}: required, and the training dataset does not have it" for key in missing])
    model = _construct("model", factory, kwargs)
    if not isinstance(model, torch.nn.Module):
        raise ConfigError("the config", [f"model: {_name(config.model)} returned {type(model).__name__}, not a torch.nn.Module"])
    return model


def build_run(config: RunConfig, config_dir: Path | None = None, source: str = "the config") -> RunParts:
    """Builds datasets, model, optimizer, scheduler, algorithms and callbacks; writes nothing.

    The seed is applied first, so the model's initial weights and the data order depend on it alone.
    ``source`` names the config (its file) in errors.

    Raises:
        ConfigError: Naming the component whose construction failed, and why.
    """
    try:
        parts = _build(config, config_dir)
    except ConfigError as error:
        if error.source == source:
            raise
        raise ConfigError(source, error.problems) from error
    parts.source = source
    return parts


def _build(config: RunConfig, config_dir: Path | None) -> RunParts:
    if config.trainer.seed is not None:
        seed_everything(config.trainer.seed)
    train = _loader("data.train", config.data.train, True, config_dir)
    evaluation = _loader("data.eval", config.data.eval, False, config_dir) if config.data.eval is not None else None
    model = _model(config, train.dataset, config_dir)
    problems = time_problems(config, train, evaluation is not None) + logger_problems(config)
    if problems:
        raise ConfigError("the config", problems)
    optimizer = _construct(
        "optimizer", _factory(config.optimizer, OPTIMIZERS, config_dir), _kwargs(config.optimizer), model.parameters()
    )
    scheduler = None
    if config.scheduler is not None:
        kwargs = _kwargs(config.scheduler)
        factory = _factory(config.scheduler, SCHEDULERS, config_dir)
        takes_optimizer = "optimizer" in inspect.signature(factory).parameters  # a Composer scheduler does not
        scheduler = _construct("scheduler", factory, kwargs, *([optimizer] if takes_optimizer else []))
    algorithms = [
        _construct(f"algorithms[{i}]", _factory(c, ALGORITHMS, config_dir), _kwargs(c)) for i, c in enumerate(config.algorithms)
    ]
    callbacks = [_construct(f"callbacks[{i}]", _factory(c, {}, config_dir), _kwargs(c)) for i, c in enumerate(config.callbacks)]
    for kind, objects, base in (("algorithms", algorithms, Algorithm), ("callbacks", callbacks, Callback)):
        for index, obj in enumerate(objects):
            if not isinstance(obj, base):
                raise ConfigError("the config", [f"{kind}[{index}]: {type(obj).__name__} is not a composer_swa {base.__name__}"])
    return RunParts(config, model, train, evaluation, optimizer, scheduler, algorithms, callbacks, config_dir)
