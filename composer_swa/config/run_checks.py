"""Checks that need the built objects (datasets, loaders, the run's length), each naming its YAML path.

The Trainer makes the same checks, but its errors name its own arguments (``train_dataloader``,
``log_interval``); a config's user needs the key to change. These run while the run is built, so
``--dry-run`` reports them and a refused run writes nothing.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from torch.utils.data import DataLoader

from composer_swa.batch_resolver import BatchResolver
from composer_swa.config.schema import RunConfig
from composer_swa.schedule import interval_or_off
from composer_swa.state import describe_dataloader, infer_tokens_per_sample
from composer_swa.time import TimeUnit, as_time

__all__ = ["loader_problems", "logger_problems", "run_resolver", "time_problems"]

#: Built-in loggers whose package is optional: the module they import, and how to install it.
_OPTIONAL_PACKAGES = {"tensorboard": ("tensorboard", "pip install tensorboard")}


def _length(sized: Any) -> int | None:
    try:
        return len(sized)
    except TypeError:  # an iterable dataset: its length is unknown until it runs
        return None


def loader_problems(path: str, dataset: Any, batch_size: int, drop_last: bool) -> list[str]:
    """An empty dataset, or a ``batch_size`` that leaves no batch (``drop_last: true``)."""
    samples = _length(dataset)
    if samples == 0:
        return [f"{path}: the dataset is empty (0 samples); check its arguments"]
    if samples is not None and drop_last and batch_size > samples:
        return [
            f"{path}.batch_size: {batch_size} is more than the dataset's {samples} samples, and drop_last is true, "
            f"so there is no batch; lower batch_size or set drop_last: false"
        ]
    return []


def run_resolver(config: RunConfig, train: DataLoader[Any]) -> BatchResolver:
    """The run's times resolved to batches against the training data, as the Trainer's State will."""
    loader: dict[str, Any] = describe_dataloader(train)  # batches_per_epoch, batch_size, samples_per_epoch
    tokens = infer_tokens_per_sample(train)
    subset = config.trainer.train_subset_num_batches
    if subset != -1 and (loader["batches_per_epoch"] is None or subset < loader["batches_per_epoch"]):
        loader |= {"batches_per_epoch": subset, "samples_per_epoch": None}  # as State.resolver cuts the epoch
    return BatchResolver(as_time(config.trainer.max_duration, "max_duration", TimeUnit.EPOCH), **loader, tokens_per_sample=tokens)


def time_problems(config: RunConfig, train: DataLoader[Any], has_eval: bool) -> list[str]:
    """The run's length and intervals resolved to batches against the training data, as the Trainer will."""
    settings = config.trainer
    try:
        resolver = run_resolver(config, train)
    except (ValueError, TypeError) as error:
        return [f"trainer.max_duration: {error}"]
    intervals = {"log_interval": settings.log_interval}
    if has_eval:
        intervals["eval_interval"] = settings.eval_interval
    if settings.save_folder is not None:
        intervals["save_interval"] = settings.save_interval
    problems = []
    for key, value in intervals.items():
        try:
            time = as_time(value, key) if key == "log_interval" else interval_or_off(value, key)
            if time is None:
                continue  # 0: never
            if time.unit is not TimeUnit.EPOCH or key == "log_interval":  # the others count epochs as they end
                resolver.to_batches(time)
        except (ValueError, TypeError) as error:
            problems.append(f"trainer.{key}: {error}")
    return problems


def logger_problems(config: RunConfig) -> list[str]:
    """Built-in loggers whose optional package is missing: found now, before a run folder is made."""
    problems = []
    for index, logger in enumerate(config.loggers or []):
        name = str(getattr(logger, "name", "")).lower()
        if name in _OPTIONAL_PACKAGES:
            module, install = _OPTIONAL_PACKAGES[name]
            if importlib.util.find_spec(module) is None:
                problems.append(f"loggers[{index}]: the {name} logger needs the {module} package: {install}")
    return problems
