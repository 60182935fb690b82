"""Composer's Trainer arguments we do not take, each with the reason and what to do instead, checked in one place.

The Trainer's signature lists exactly what it takes (no ``**kwargs``). :func:`refuses_unknown` wraps
``__init__``, ``fit`` and ``eval`` so that any other keyword is refused before the call with
:class:`UnsupportedArgumentError`: a Composer argument from the tables below names its reason, and
an unknown one is checked against the accepted names for a likely typo.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["FIT_UNSUPPORTED", "TRAINER_UNSUPPORTED", "UnsupportedArgumentError", "refuses_unknown"]

F = TypeVar("F", bound=Callable[..., Any])


class UnsupportedArgumentError(TypeError):
    """An argument the call does not take: one of Composer's we do not support (with why), or a typo.

    Example:
        >>> from composer_swa import Trainer
        >>> try:
        ...     Trainer(model=None, train_dataloader=[], max_duration=1, profiler=object())
        ... except UnsupportedArgumentError as error:
        ...     print(error)
        Trainer does not take Composer's argument 'profiler': wrap fit() in torch.profiler.profile(...) instead
    """


#: Composer ``Trainer(...)`` arguments that composer_swa does not take, and why.
TRAINER_UNSUPPORTED: dict[str, str] = {
    "train_dataloader_label": "there is one training dataloader and its metrics are named 'train/...'",
    "spin_dataloaders": "a run resumed mid-epoch restores the loader's RNG states and skips the consumed batches "
    "itself, so there is nothing to switch off",
    "algorithm_passes": "algorithms run in the order of algorithms=[...]; reorder that list "
    "(conflicting algorithms are refused by composer_swa.events.composition)",
    "scale_schedule_ratio": "scale max_duration and your schedulers' times yourself",
    "console_stream": "the console logger (log_to_console=True) writes to stdout through tqdm, below the progress bar",
    "log_traces": "the algorithm trace (which algorithm acted on which event, how often) is logged once, at the end of fit()",
    "auto_log_hparams": "hyperparameters are not logged; log what you need from a Callback at Event.INIT",
    "load_object_store": "checkpoints load from local files only; download the file and pass its path as load_path",
    "load_strict_model_weights": "weights always load strictly; load_weights_only=True names any missing or unexpected key",
    "load_progress_bar": "local loads show no progress bar",
    "load_ignore_keys": "a checkpoint loads whole; with load_weights_only=True only the model's weights are taken",
    "load_exclude_algorithms": "a resumed run must have the checkpoint's algorithms, in the same order",
    "save_weights_only": "checkpoints hold the whole state for an exact resume; the weights alone are exported as "
    "safetensors to save_folder/final/ after fit()",
    "save_ignore_keys": "checkpoints hold the whole state, which an exact resume needs",
    "save_metrics": "evaluation metrics are logged, not checkpointed",
    "parallelism_config": "launch with torchrun and pass parallelism='ddp' or 'fsdp'",
    "precision_config": "it configures amp_fp8, which needs NVIDIA Transformer Engine; use precision='amp_bf16'",
    "accumulate_train_batch_on_tokens": "microbatch losses are weighted by their samples, so the gradient is the batch's mean",
    "deterministic_mode": "call torch.use_deterministic_algorithms(True) before building the Trainer",
    "dist_timeout": "the process group uses torch's default timeout; initialize it yourself to set one",
    "ddp_sync_strategy": "under DDP gradients are synchronized once, on the last microbatch's backward",
    "profiler": "wrap fit() in torch.profiler.profile(...) instead",
    "python_log_level": "call logging.basicConfig(level=...) yourself",
    "compile_config": "pass a torch.compile(model) model; training runs it and statistics passes use the original",
}

#: Composer ``fit(...)`` arguments that composer_swa's ``fit()`` does not take, and why.
FIT_UNSUPPORTED: dict[str, str] = {
    "train_dataloader_label": TRAINER_UNSUPPORTED["train_dataloader_label"],
    "spin_dataloaders": TRAINER_UNSUPPORTED["spin_dataloaders"],
    "scale_schedule_ratio": TRAINER_UNSUPPORTED["scale_schedule_ratio"],
    "schedulers": "schedulers are set once, on the Trainer; build a new Trainer to train with others",
    "step_schedulers_every_batch": "it is set once, on the Trainer, with the schedulers",
    "precision": "precision is set once, on the Trainer (autocast and the GradScaler are built with it)",
}


def _message(owner: str, name: str, table: Mapping[str, str], accepted: set[str]) -> str:
    if name in table:
        return f"{owner} does not take Composer's argument {name!r}: {table[name]}"
    close = difflib.get_close_matches(name, accepted, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; it takes {', '.join(sorted(accepted))}"
    return f"{owner} got an unexpected argument {name!r}{hint}"


def refuses_unknown(owner: str, table: Mapping[str, str]) -> Callable[[F], F]:
    """Wraps a method so a keyword it does not take raises :class:`UnsupportedArgumentError`, naming the reason.

    The wrapper keeps the method's signature (``inspect.signature`` follows it), which the config
    schema reads.

    Example:
        >>> class Runner:
        ...     @refuses_unknown("Runner", {"turbo": "it would not help"})
        ...     def run(self, steps: int = 1) -> int:
        ...         return steps
        >>> try:
        ...     Runner().run(stpes=3)
        ... except UnsupportedArgumentError as error:
        ...     print(error)
        Runner got an unexpected argument 'stpes'; did you mean 'steps'?
    """

    def decorate(method: F) -> F:
        accepted = {name for name in inspect.signature(method).parameters if name != "self"}

        @functools.wraps(method)
        def checked(*args: Any, **kwargs: Any) -> Any:
            for name in kwargs:
                if name not in accepted:
                    raise UnsupportedArgumentError(_message(owner, name, table, accepted))
            return method(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate
