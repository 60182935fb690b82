"""composer_swa's algorithms inside ``lightning.Trainer``, as a ``lightning.pytorch.Callback``."""

from __future__ import annotations

import math
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as error:  # the core never imports this module; only this adapter needs Lightning
    raise ImportError(
        "composer_swa.integrations.LightningCallback needs Lightning: pip install 'composer_swa[lightning]'"
    ) from error

from composer_swa.batch_resolver import BatchResolver
from composer_swa.integrations.adapter import FrameworkAdapter
from composer_swa.loader_facts import infer_tokens_per_sample
from composer_swa.state import unique_keys
from composer_swa.time import Time, TimeUnit

__all__ = ["LightningCallback"]

_NO_EPOCH_LENGTH = (
    "lightning.Trainer's train dataloader has no length (an IterableDataset), so an epoch has no known number of optimizer steps"
)


class LightningCallback(FrameworkAdapter, pl.Callback):
    """Runs composer_swa algorithms (SWA, EMA, LAWA) inside ``lightning.Trainer``.

    Hooks map to events: ``on_train_start`` → FIT_START, the first ``on_train_batch_start`` of an
    optimizer step → BATCH_START, the ``on_train_batch_end`` where ``trainer.global_step`` grows →
    BATCH_END (so ``accumulate_grad_batches`` micro-batches are one batch), ``on_before_optimizer_step``
    → AFTER_TRAIN_BATCH (after Lightning unscales fp16 gradients, before its own ``gradient_clip_val``
    clipping, which stays the simpler choice for ``"norm"``/``"value"``), the epoch's last step →
    EPOCH_END, ``on_validation_start``/``on_validation_end`` → EVAL_START/EVAL_END (skipped in the
    sanity check), ``on_train_end`` → FIT_END. The run's length is
    ``trainer.estimated_stepping_batches``, so ``"0.7dur"`` is 70% of the optimizer steps. SWA's
    batch-norm pass runs ``pl_module(x)`` over ``trainer.train_dataloader`` (``forward`` changes that).

    Checkpoints: the algorithms' state and the timestamp are this callback's ``state_dict``, saved in
    Lightning's checkpoint and restored by ``trainer.fit(..., ckpt_path=...)``. Lightning runs
    ``ModelCheckpoint`` after other callbacks, so a checkpoint holds the step's snapshot.

    While SWA schedules the LR, Lightning's schedulers keep stepping (SWA overwrites the LR at each
    step's start), so after an early ``swa_end`` they go on from their own step count.

    Args:
        algorithms: composer_swa algorithms, in the order they run.
        callbacks: composer_swa callbacks.
        loggers: Where algorithms' messages go; default: the console.
        forward: Runs the model on one batch for statistics passes; default ``pl_module(x)`` for
            ``(x, y)`` batches, ``pl_module(**batch)`` for dicts.

    Raises:
        ValueError: An algorithm replaces the optimizer (SWATS); at ``on_train_start``, also when the
            run has no known length or an ``ep`` time meets a dataloader without one.

    Example:
        >>> from composer_swa import SWA
        >>> callback = LightningCallback([SWA(swa_start="0.7dur", update_interval="5ba")])
        >>> # lightning.Trainer(max_epochs=10, callbacks=[callback]).fit(module, train_dataloader)
    """

    start_hook = "on_train_start"
    _saved: dict[str, Any] | None = None  # the checkpoint's state, until the runner exists

    @property
    def state_key(self) -> str:
        return str(self._generate_state_key(algorithms=unique_keys(self.algorithms)))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = trainer.train_dataloader
        if loader is None:
            raise RuntimeError("lightning.Trainer has no train dataloader at on_train_start; pass train_dataloaders to fit()")
        runner = self._build_runner(pl_module, trainer.optimizers, loader, _resolver(trainer, loader))
        if self._saved is not None:
            runner.load_state_dict(self._saved)
        if runner.state.timestamp.batch_count != trainer.global_step:
            held = f"at step {runner.state.timestamp.batch_count}" if self._saved is not None else "none"
            raise ValueError(
                f"lightning.Trainer resumed at step {trainer.global_step}, but the checkpoint holds the algorithms' state "
                f"{held}, so their averages would be lost; resume from a checkpoint saved with this LightningCallback "
                f"(state key {self.state_key!r})"
            )
        runner.fit_start()
        self.runner = runner

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._runner.batch_start()

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self._runner.after_train_batch()  # Lightning has unscaled fp16 gradients and not yet clipped its own

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step > self._runner.state.timestamp.batch_count:  # not a micro-batch of an accumulation
            self._runner.batch_end()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._runner.epoch_end()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.runner is not None and not trainer.sanity_checking:
            self.runner.eval_start()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.runner is not None and not trainer.sanity_checking:
            self.runner.eval_end({name: float(value) for name, value in trainer.callback_metrics.items()})

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._runner.fit_end()

    def state_dict(self) -> dict[str, Any]:
        if self.runner is not None:
            return self.runner.state_dict()
        return self._saved or {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved = state_dict or None


def _resolver(trainer: pl.Trainer, loader: Any) -> BatchResolver:
    """Times resolved against what Lightning knows: its estimated optimizer steps and steps per epoch."""
    total_steps = trainer.estimated_stepping_batches
    # Lightning estimates inf for max_epochs=-1, and max_steps itself (-1 when unset) over a dataloader without length.
    if not math.isfinite(total_steps) or total_steps < 0:
        loader_length = "a dataloader without length" if math.isinf(trainer.num_training_batches) else "its dataloader"
        raise ValueError(
            f"lightning.Trainer gives the run no length (max_steps={trainer.max_steps}, max_epochs={trainer.max_epochs}, "
            f"over {loader_length}, so estimated_stepping_batches={total_steps!r}); set max_steps so 'dur' times and "
            "SWA's window can be resolved"
        )
    accumulate = trainer.accumulate_grad_batches
    batches = trainer.num_training_batches
    batches_per_epoch = math.ceil(batches / accumulate) if math.isfinite(batches) else None
    try:
        whole_epoch = batches == len(loader)
        samples_per_epoch: int | None = len(loader.dataset) if whole_epoch else None
    except (AttributeError, TypeError):
        samples_per_epoch = None
    loader_batch_size = getattr(loader, "batch_size", None)
    return BatchResolver(
        max_duration=Time(int(total_steps), TimeUnit.BATCH),
        batches_per_epoch=batches_per_epoch,
        batch_size=loader_batch_size * accumulate * trainer.world_size if loader_batch_size else None,
        samples_per_epoch=samples_per_epoch,
        tokens_per_sample=infer_tokens_per_sample(loader),
        why_no_epoch_length=_NO_EPOCH_LENGTH,
    )
