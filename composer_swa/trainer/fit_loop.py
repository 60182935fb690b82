"""The body of ``Trainer.fit()``: epochs of batches between FIT_START and the end of fit, with the
evaluations, logs and checkpoints that fall between them."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from composer_swa.checkpoint.folder_lock import owning_save_folder
from composer_swa.distributed.process_group import reduce_sum
from composer_swa.optim.base import refresh_composer_schedulers
from composer_swa.trainer.ending import finish_fit, save_at_boundary

if TYPE_CHECKING:
    from composer_swa.trainer.trainer import Trainer

__all__: list[str] = []


def run_fit(trainer: Trainer) -> None:
    """Trains until ``state.max_duration``, from wherever the run stands (a checkpoint, or an earlier fit())."""
    state, loop, checkpointer = trainer.state, trainer.loop, trainer.checkpointer
    state.model.train()
    watching = trainer._preemption.watching() if checkpointer.saving else contextlib.nullcontext()
    # One run per save_folder while fit() runs; SIGTERM/SIGINT are noted from here to the end of the export.
    with owning_save_folder(checkpointer.options.save_folder, trainer.device) as folder_notes, watching:
        checkpoint = checkpointer.restore(state, trainer.engine, trainer._scaler)
        loop.fit_start()
        refresh_composer_schedulers(state)  # the run's length and data are known now, and may be new (fit(duration=...))
        for note in folder_notes + checkpointer.notes:  # after FIT_START, where a run's loggers may first be attached
            trainer.logger.log_message(note, step=state.timestamp.batch_count)
        checkpointer.resolve(state)
        trainer.intervals.resolve(state, has_eval_data=state.eval_dataloader is not None)
        if checkpoint is not None and not state.is_finished:
            trainer._epochs.resume(checkpoint)
        show = trainer.progress_bar and sys.stderr.isatty()
        with tqdm(
            total=state.max_batches, initial=state.timestamp.batch_count, unit="ba", dynamic_ncols=True, disable=not show
        ) as bar:
            while not state.is_finished:
                for batch in trainer._epochs.next_epoch():
                    _train_batch(trainer, batch)
                    bar.update(1)
                    if trainer.intervals.evaluates(state.timestamp, at_epoch_end=False):
                        trainer._evaluate()
                    if state.is_finished:
                        break
                    if not loop.epoch_is_full:  # else: saved after EPOCH_END
                        save_at_boundary(trainer, epoch_ended=False)
                if state.timestamp.batch_in_epoch == 0:
                    raise ValueError("train_dataloader yielded no batches in an epoch; it must yield at least one")
                if loop.epoch_is_full or not state.is_finished:  # max_duration may fall mid-epoch
                    _end_epoch(trainer)
                    save_at_boundary(trainer, epoch_ended=True)
        trainer._epochs.pause()  # a later fit() goes on with the rest of this epoch
        finish_fit(trainer)


def _train_batch(trainer: Trainer, batch: Any) -> None:
    loss = trainer._step.run(batch)  # BATCH_START ... BATCH_END
    to_loggers, to_console = trainer.intervals.logs(trainer.state.timestamp)
    if to_loggers or to_console:  # the same on every process: the loss is reduced across them
        _log_training(trainer, loss, to_loggers, to_console)


def _end_epoch(trainer: Trainer) -> None:
    trainer.loop.end_epoch(counted=trainer._step.step_schedulers_after_epoch)
    if trainer.intervals.evaluates(trainer.state.timestamp, at_epoch_end=True):
        trainer._evaluate()


def _log_training(trainer: Trainer, loss: torch.Tensor | None, to_loggers: bool, to_console: bool) -> None:
    """The training loss and LR: to ``loggers`` every ``log_interval``, to the console every ``console_log_interval``."""
    trainer._guard.check_losses()  # the logged loss waits on the device anyway
    world_size = trainer.distributed.world_size
    if loss is not None and world_size > 1:
        loss = reduce_sum(loss.detach().clone()) / world_size
    metrics = {"train/loss": float(loss.detach()) if loss is not None else float("nan")}
    if trainer.state.optimizers:
        metrics["train/lr"] = float(trainer.state.optimizers[0].param_groups[0]["lr"])
    for destination in trainer.logger.destinations:
        if to_console if destination is trainer._console else to_loggers:
            destination.log_metrics(metrics, step=trainer.state.timestamp.batch_count)
