"""The State: everything an algorithm may read or change, shared by the loop, algorithms and callbacks."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from composer_swa.batch_resolver import BatchResolver
from composer_swa.distributed.sharded import (
    load_model_state_dict,
    load_optimizer_state_dict,
    model_state_dict,
    optimizer_state_dict,
)
from composer_swa.events.arguments import load_with_arguments, state_with_arguments
from composer_swa.loader_facts import describe_dataloader, infer_tokens_per_sample
from composer_swa.optim.base import compile_schedulers
from composer_swa.time import Time, as_time
from composer_swa.timestamp import Timestamp

if TYPE_CHECKING:
    from torchmetrics import Metric

    from composer_swa.events.algorithm import Algorithm
    from composer_swa.events.callback import Callback

__all__ = ["State"]


def unique_keys(objects: Sequence[object]) -> list[str]:
    """Checkpoint keys by class name, numbered from the second of a class on: ``SWA``, ``SWA_1``, ``EMA``.

    Keys depend only on the order of the list, so the same ``algorithms=[...]`` always maps back.

    Example:
        >>> unique_keys([1, "a", 2])
        ['int', 'str', 'int_1']
    """
    seen: dict[str, int] = {}
    keys = []
    for obj in objects:
        name = type(obj).__name__
        keys.append(name if name not in seen else f"{name}_{seen[name]}")
        seen[name] = seen.get(name, 0) + 1
    return keys


class State:
    """The training state: model, optimizers, schedulers, data, the timestamp and the run's length.

    Our :class:`~composer_swa.Trainer` builds one; a plain loop builds its own and fires events with
    an :class:`~composer_swa.events.Engine`. Times resolve to batch counts through :meth:`to_batches`,
    using the train dataloader's length unless ``resolver`` is set by hand (e.g. for an iterable
    dataset or a token-based duration).

    Args:
        model: The model being trained (unwrapped; distributed wrappers keep their own reference).
        max_duration: The run's length, e.g. ``"10ep"`` or ``"2000ba"`` (``None``: set before training).
        train_dataloader: The training batches of one epoch (``None``: set before training).
        eval_dataloader: Optional evaluation batches.
        optimizers: The optimizers; algorithms that own the LR act on all of them.
        schedulers: ``torch.optim.lr_scheduler`` objects or Composer schedulers (:mod:`composer_swa.optim`),
            compiled here into LambdaLRs; the loop steps them while ``lr_owner`` is None.
        algorithms: The algorithms, in the order they run at each event.
        callbacks: The callbacks, run after the algorithms.
        device: Where the model lives.

    Example:
        >>> import torch
        >>> state = State(model=torch.nn.Linear(2, 2), max_duration="2ep", train_dataloader=[0, 1, 2, 3, 4])
        >>> state.to_batches("0.7dur")
        7
    """

    def __init__(
        self,
        model: torch.nn.Module,
        max_duration: Time | str | int | None,
        train_dataloader: Iterable[Any] | None,
        eval_dataloader: Iterable[Any] | None = None,
        optimizers: Sequence[torch.optim.Optimizer] = (),
        schedulers: Sequence[Any] = (),
        algorithms: Sequence[Algorithm] = (),
        callbacks: Sequence[Callback] = (),
        device: torch.device | str | None = None,
    ) -> None:
        self.model = model
        self._resolver: BatchResolver | None = None
        self.max_duration = max_duration
        self.train_dataloader = train_dataloader
        self.eval_dataloader = eval_dataloader
        self.optimizers = list(optimizers)
        self.schedulers = list(schedulers)
        self.algorithms = list(algorithms)
        self.callbacks = list(callbacks)
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.timestamp = Timestamp()
        self.precision = "fp32"
        self.grad_accum = 1
        #: Samples per microbatch (Composer's name); when set, batches split by it instead of into ``grad_accum`` parts.
        self.device_train_microbatch_size: int | None = None
        #: The run's name (the Trainer's ``run_name``), which fills ``{run_name}`` in checkpoint paths.
        self.run_name: str | None = None
        self.rank = 0
        self.world_size = 1
        self.batch: Any = None
        self.outputs: Any = None
        self.loss: torch.Tensor | None = None
        #: The last evaluation's metrics, ``{label: {name: torchmetrics Metric}}`` as in Composer (label ``"eval"``).
        self.eval_metrics: dict[str, dict[str, Metric]] = {}
        #: The algorithm driving the learning rate, if any; the loop does not step schedulers then.
        self.lr_owner: Algorithm | None = None
        #: Runs the model on one batch (device, precision, microbatching); used by statistics passes.
        self.run_forward: Callable[[Any], Any] | None = None
        self.stop_training = False
        #: Where the run saves checkpoints (the Trainer's ``save_folder``); algorithms put their files beside them.
        self.save_folder: Path | None = None
        self.tokens_per_sample: float | None = None
        self._subset: int | None = None
        # Last: a ComposerScheduler compiles into a LambdaLR that reads the timestamp and the run's length.
        self.schedulers = compile_schedulers(self.schedulers, self)

    @property
    def max_duration(self) -> Time:
        """The run's length; setting it (``fit(duration=...)`` does) re-resolves every time against it."""
        if self._max_duration is None:
            raise ValueError("max_duration is not set; pass it to the Trainer, or fit(duration=...)")
        return self._max_duration

    @max_duration.setter
    def max_duration(self, value: Time | str | int | None) -> None:
        self._max_duration = None if value is None else as_time(value, "max_duration")
        self._resolver = None

    @property
    def train_dataloader(self) -> Iterable[Any]:
        """The training batches of one epoch; setting them re-resolves every time against them."""
        if self._train_dataloader is None:
            raise ValueError("train_dataloader is not set; pass it to the Trainer, or fit(train_dataloader=...)")
        return self._train_dataloader

    @train_dataloader.setter
    def train_dataloader(self, value: Iterable[Any] | None) -> None:
        self._train_dataloader = value
        self._resolver = None

    @property
    def ready_to_train(self) -> bool:
        """Whether both the training data and the run's length are set."""
        return self._train_dataloader is not None and self._max_duration is not None

    @property
    def train_subset_num_batches(self) -> int | None:
        """Batches an epoch is cut to (the Trainer's ``train_subset_num_batches``), or ``None`` for the whole loader."""
        return self._subset

    @train_subset_num_batches.setter
    def train_subset_num_batches(self, value: int | None) -> None:
        self._subset = value
        self._resolver = None

    @property
    def resolver(self) -> BatchResolver:
        if self._resolver is None:
            loader = describe_dataloader(self.train_dataloader)
            batches, samples = loader["batches_per_epoch"], loader["samples_per_epoch"]
            if self._subset is not None and (batches is None or self._subset < batches):
                batches, samples = self._subset, None  # a cut epoch holds only full batches
            self._resolver = BatchResolver(
                max_duration=self.max_duration,
                batches_per_epoch=batches,
                batch_size=loader["batch_size"],
                samples_per_epoch=samples,
                tokens_per_sample=self.tokens_per_sample or infer_tokens_per_sample(self.train_dataloader),
            )
        return self._resolver

    @resolver.setter
    def resolver(self, resolver: BatchResolver) -> None:
        self._resolver = resolver

    @property
    def max_batches(self) -> int:
        return self.resolver.max_batches

    @property
    def batches_per_epoch(self) -> int | None:
        return self.resolver.batches_per_epoch

    def to_batches(self, time: Time | str | int) -> int:
        """The completed-batch count at which ``time`` is reached in this run."""
        return self.resolver.to_batches(as_time(time))

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizers, schedulers, timestamp, and every algorithm's and callback's state.

        Tensors and plain containers only, so it loads with ``torch.load(..., weights_only=True)``.
        Under FSDP2 shards are gathered into whole tensors: every process must call it.
        """
        return {
            "model": model_state_dict(self.model),
            "optimizers": [optimizer_state_dict(self.model, optimizer) for optimizer in self.optimizers],
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
            "timestamp": self.timestamp.state_dict(),
            **self.algorithms_state_dict(),
        }

    def algorithms_state_dict(self) -> dict[str, Any]:
        """Every algorithm's and callback's state, keyed as in :meth:`state_dict` (what a host framework's
        checkpoint lacks: it saves the model and optimizers itself)."""
        return {
            "algorithms": {key: state_with_arguments(a) for key, a in zip(unique_keys(self.algorithms), self.algorithms)},
            "callbacks": {key: c.state_dict() for key, c in zip(unique_keys(self.callbacks), self.callbacks)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.load_algorithms_state_dict(state)
        for algorithm in self.algorithms:
            algorithm.on_load(self)
        load_model_state_dict(self.model, state["model"])
        for part, objects in (("optimizers", self.optimizers), ("schedulers", self.schedulers)):
            if len(objects) != len(state[part]):
                raise ValueError(f"the checkpoint holds {len(state[part])} {part}, this run has {len(objects)}")
        for optimizer, saved in zip(self.optimizers, state["optimizers"]):
            load_optimizer_state_dict(self.model, optimizer, saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
        self.timestamp.load_state_dict(state["timestamp"])

    def load_algorithms_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`algorithms_state_dict`.

        The algorithm list must match the saved run's. Each algorithm's stored constructor arguments
        are compared with its own (:mod:`composer_swa.events.arguments`): a change is a warning, or a
        ValueError when it would make the saved average wrong. Callbacks are matched by key: one the
        checkpoint does not know starts fresh, and saved state no callback takes is reported.
        """
        keys = unique_keys(self.algorithms)
        if sorted(keys) != sorted(state["algorithms"]):
            raise ValueError(
                f"the checkpoint holds algorithms {sorted(state['algorithms'])}, this run has {sorted(keys)}; "
                "resume with the algorithms the run was saved with, in the same order"
            )
        for key, algorithm in zip(keys, self.algorithms):
            load_with_arguments(algorithm, key, state["algorithms"][key])  # warns of, or refuses, changed arguments
        callbacks = dict(zip(unique_keys(self.callbacks), self.callbacks))
        if orphans := sorted(key for key, saved in state["callbacks"].items() if saved and key not in callbacks):
            warnings.warn(f"the checkpoint holds state for callbacks {orphans} that this run does not have", stacklevel=2)
        for key, callback in callbacks.items():
            if key in state["callbacks"]:
                callback.load_state_dict(state["callbacks"][key])

    @property
    def is_finished(self) -> bool:
        return self.stop_training or self.timestamp.batch_count >= self.resolver.max_batches


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")
