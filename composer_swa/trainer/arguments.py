"""The Trainer's arguments in the forms Composer accepts, turned into the one form the Trainer uses.

Composer takes ``None``, one object or a list for ``algorithms``, ``callbacks`` and ``loggers``; ``-1``
for "the whole loader"; a microbatch size rather than a count. Each rule is one function here, so
the Trainer, ``fit()`` and the config schema read an argument the same way. What a form Composer
takes but we do not (a callable interval, an object store URI, several evaluators) is refused here
with the reason.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from composer_swa.loggers import ConsoleLogger, JSONLinesLogger, LoggerDestination

__all__: list[str] = []

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def as_list(value: Any, argument: str) -> list[Any]:
    """``None`` -> ``[]``, one object -> ``[object]``, a list or tuple -> a list (Composer's ``ensure_tuple``).

    Example:
        >>> as_list(None, "callbacks"), as_list("x", "callbacks"), as_list(("x", "y"), "callbacks")
        ([], ['x'], ['x', 'y'])
    """
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def subset_count(value: Any, argument: str) -> int | None:
    """Composer's ``-1`` (the whole loader) as ``None``, or a count of batches >= 1.

    Example:
        >>> subset_count(-1, "eval_subset_num_batches"), subset_count(3, "eval_subset_num_batches")
        (None, 3)
    """
    if value is None or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument} must be -1 (the whole loader) or a count of batches >= 1, got {value!r}")
    return value


def microbatching(device_train_microbatch_size: Any, grad_accum: Any) -> tuple[int, int | None]:
    """``(grad_accum, microbatch size)``: a batch splits into ``grad_accum`` parts, or into parts of a size.

    Raises:
        ValueError: Both are given, ``"auto"`` or a float is asked for, or a value is out of range.
    """
    if isinstance(grad_accum, bool) or not isinstance(grad_accum, int) or grad_accum < 1:
        raise ValueError(f"grad_accum must be an int >= 1 (microbatches per batch), got {grad_accum!r}")
    size = device_train_microbatch_size
    if size is None:
        return grad_accum, None
    if size == "auto":
        raise ValueError(
            "device_train_microbatch_size='auto' is not supported: Composer finds the size by catching CUDA "
            "out-of-memory errors and retrying, which can leave CUDA in a broken state; pass an int "
            "(samples per microbatch), found once with a short trial run"
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"device_train_microbatch_size must be an int >= 1 (samples per microbatch), got {size!r}")
    if grad_accum != 1:
        raise ValueError(
            f"pass device_train_microbatch_size={size!r} or grad_accum={grad_accum!r}, not both: "
            "each says how a batch is split into microbatches"
        )
    return 1, size


def check_interval_form(value: Any, argument: str) -> None:
    """Refuses Composer's callable ``(state, event) -> bool`` intervals, which we do not take."""
    if callable(value) and not isinstance(value, str):
        raise TypeError(
            f"{argument} as a callable (state, event) -> bool is not supported; pass a Time, a time string "
            "('2ep', '500ba', '0.25dur') or an int of epochs"
        )


def check_local_path(value: Any, argument: str) -> None:
    """Refuses object-store URIs (``s3://...``), which Composer uploads to and we do not."""
    if isinstance(value, str) and _URI.match(value):
        raise ValueError(f"{argument}={value!r} is a URI; composer_swa reads and writes local paths only")


def check_loader(value: Any, argument: str) -> None:
    """Refuses Composer's forms of a dataloader we do not take: DataSpec dicts and lists of loaders (Evaluators)."""
    if isinstance(value, dict):
        raise TypeError(f"{argument} as a dict (Composer's DataSpec arguments) is not supported; pass the dataloader itself")
    loaders = value if isinstance(value, (list, tuple)) else [value]
    if any(hasattr(item, "metric_names") and hasattr(item, "dataloader") for item in loaders):
        raise TypeError(f"{argument}: Composer's Evaluator is not supported; pass one dataloader")
    if isinstance(value, (list, tuple)) and value and all(_is_loader(item) for item in value):
        raise TypeError(f"{argument} holds {len(value)} dataloaders; composer_swa evaluates one eval_dataloader, pass one")


def check_composer_forms(
    train_dataloader: Any,
    eval_dataloader: Any,
    eval_interval: Any,
    save_interval: Any,
    save_folder: Any,
    load_path: Any,
    autoresume: bool,
    run_name: str | None,
    save_filename: str,
) -> None:
    """Refuses, before any work, the forms of the Trainer's arguments that Composer takes and we do not."""
    for argument, loader in (("train_dataloader", train_dataloader), ("eval_dataloader", eval_dataloader)):
        check_loader(loader, argument)
    for argument, interval in (("eval_interval", eval_interval), ("save_interval", save_interval)):
        check_interval_form(interval, argument)
    for argument, path in (("save_folder", save_folder), ("load_path", load_path)):
        check_local_path(path, argument)
    named = run_name is not None or bool(os.environ.get("COMPOSER_RUN_NAME") or os.environ.get("RUN_NAME"))
    if autoresume and not named and any("{run_name}" in str(path) for path in (save_folder, save_filename)):
        raise ValueError(
            "autoresume=True with {run_name} in save_folder or save_filename needs run_name=...: "
            "a generated name differs from run to run, so the checkpoints would never be found again"
        )


def _is_loader(value: Any) -> bool:
    return hasattr(value, "__iter__") and hasattr(value, "batch_size") and hasattr(value, "dataset")


def build_loggers(
    loggers: Any, log_to_console: bool, run_dir: str | Path | None, writes: bool
) -> tuple[list[LoggerDestination], ConsoleLogger | None]:
    """The run's destinations, and the console among them that ``log_to_console`` added (if any).

    ``loggers`` as given (``None``: none), a JSON-lines file in ``run_dir``, and with ``log_to_console``
    a console logger unless ``loggers`` already has one. Only the process that ``writes`` (process 0)
    has any.
    """
    if not writes:
        return [], None
    destinations: list[LoggerDestination] = as_list(loggers, "loggers")
    if run_dir is not None:
        destinations.append(JSONLinesLogger(Path(run_dir) / "metrics.jsonl"))
    console = None
    if log_to_console and not any(isinstance(destination, ConsoleLogger) for destination in destinations):
        console = ConsoleLogger()
        destinations.insert(0, console)
    return destinations, console


def eval_batches(loader: Iterable[Any], subset: int | None) -> Iterable[Any]:
    """The batches one evaluation runs on: the loader, or its first ``subset`` batches."""
    return loader if subset is None else itertools.islice(loader, subset)
