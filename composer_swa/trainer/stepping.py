"""One training step on one batch: microbatches forward and backward, AFTER_TRAIN_BATCH, the optimizer step.

Under DDP gradients are averaged across processes once, on the last microbatch's backward; the
microbatches' losses are weighted by their size, so the summed gradient is the full batch's mean.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.nn.parallel import DistributedDataParallel

from composer_swa.batches import batch_num_samples, batch_num_tokens, split_batch, to_device
from composer_swa.optim.base import is_composer_scheduler

if TYPE_CHECKING:
    from composer_swa.events.loop import Loop
    from composer_swa.model_calls import ModelCalls
    from composer_swa.state import State
    from composer_swa.trainer.guards import RunGuard

__all__: list[str] = []

_NO_SYNC = contextlib.nullcontext()  # reusable: one fewer object per microbatch on the hot path


class TrainingStep:
    """Runs the Trainer's batches, from BATCH_START to BATCH_END, with what the Trainer set up once.

    Args:
        loop: The run's loop (fires the events, counts the batch).
        module: What training calls: the model, DDP around it, or the compiled model.
        calls: How the model is called and its loss computed (a ComposerModel's ``loss()``, or ``loss_fn``).
        autocast: A factory of the context each forward runs in.
        scaler: The fp16 GradScaler, if any.
        guard: Watches the losses (on the device).
        world_size: Processes; samples and tokens count every process's share.
        step_schedulers_every_batch: Step every LR scheduler after every batch (True) or every epoch
            (False); None: Composer's default, see :func:`step_schedulers`.
    """

    def __init__(
        self,
        loop: Loop,
        module: torch.nn.Module,
        calls: ModelCalls,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]],
        scaler: torch.amp.GradScaler | None,
        guard: RunGuard,
        world_size: int,
        step_schedulers_every_batch: bool | None,
    ) -> None:
        self.loop, self.module, self.calls, self.autocast, self.scaler = loop, module, calls, autocast, scaler
        self.guard, self.world_size, self.every_batch = guard, world_size, step_schedulers_every_batch
        self.ddp = module if isinstance(module, DistributedDataParallel) else None
        self.device = loop.state.device
        self.move_batches = self.device.type != "cpu"

    def step_schedulers_after_batch(self) -> None:
        step_schedulers(self.loop.state, self.every_batch, at_epoch_end=False)

    def step_schedulers_after_epoch(self) -> None:
        step_schedulers(self.loop.state, self.every_batch, at_epoch_end=True)

    def run(self, batch: Any) -> torch.Tensor | None:
        """Trains on ``batch``; returns its loss (summed over microbatches) for the log, without waiting for it."""
        state, loop = self.loop.state, self.loop
        state.batch = batch
        loop.batch_start()
        samples = batch_num_samples(batch)
        tokens = batch_num_tokens(batch)
        if self.move_batches:
            batch = to_device(batch, self.device)
        microbatches = split_batch(batch, state.grad_accum, state.device_train_microbatch_size)
        batch_loss = torch.zeros((), device=self.device) if len(microbatches) > 1 else None
        for index, microbatch in enumerate(microbatches):
            last = index == len(microbatches) - 1
            syncing = self.ddp.no_sync() if not last and self.ddp is not None else _NO_SYNC
            with syncing, self.autocast():
                state.outputs = self.calls.forward(self.module, microbatch)
                loop.after_forward()
                loss = self.calls.loss(state.outputs, microbatch)
            if batch_loss is not None:
                loss = loss * (batch_num_samples(microbatch) / samples)
                batch_loss += loss.detach()
            state.loss = loss
            self.guard.note_loss(loss, state.timestamp.batch_count + 1)
            loop.after_loss()
            with syncing:
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            loop.after_backward()
        step_optimizers(state, loop, self.scaler)  # fires AFTER_TRAIN_BATCH
        loop.batch_end(samples * self.world_size, tokens * self.world_size, counted=self.step_schedulers_after_batch)
        return batch_loss if batch_loss is not None else state.loss


def step_optimizers(state: State, loop: Loop, scaler: torch.amp.GradScaler | None) -> None:
    """Fires AFTER_TRAIN_BATCH on the batch's whole gradient, steps each optimizer and zeroes its gradients.

    Under fp16 the gradients are unscaled first, so an algorithm that clips them at AFTER_TRAIN_BATCH
    compares thresholds with their true size; ``scaler.step`` then skips the unscale it would do itself
    (and still skips the step when they hold an inf or NaN).

    Example:
        >>> import torch
        >>> from composer_swa import State
        >>> from composer_swa.events.loop import Loop
        >>> from composer_swa.loggers import Logger
        >>> model = torch.nn.Linear(1, 1, bias=False)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        >>> state = State(model=model, max_duration="1ba", train_dataloader=[0], optimizers=[optimizer])
        >>> model.weight.grad = torch.ones(1, 1)
        >>> before = model.weight.item()
        >>> step_optimizers(state, Loop(state, Logger()), scaler=None)
        >>> round(before - model.weight.item(), 6), model.weight.grad
        (1.0, None)
    """
    if scaler is not None:
        for optimizer in state.optimizers:
            scaler.unscale_(optimizer)
    loop.after_train_batch()
    for optimizer in state.optimizers:
        if scaler is not None:
            scaler.step(optimizer)
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.update()


def step_schedulers(state: State, every_batch: bool | None, at_epoch_end: bool) -> None:
    """Steps the LR schedulers due at this boundary, unless an algorithm owns the learning rate (``state.lr_owner``).

    It runs once the batch (epoch) is counted. As in Composer, with ``every_batch=None`` a PyTorch
    scheduler steps after every epoch and a Composer scheduler (:mod:`composer_swa.optim`) after
    every batch; ``True`` steps every scheduler after every batch, ``False`` after every epoch. A
    Composer scheduler also steps once an epoch is counted (it only reads the time again).

    Example:
        >>> import torch
        >>> from composer_swa import State
        >>> from composer_swa.optim import LinearScheduler
        >>> model = torch.nn.Linear(1, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        >>> epochwise = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        >>> state = State(model, "10ba", [0] * 5, optimizers=[optimizer], schedulers=[LinearScheduler(), epochwise])
        >>> state.timestamp.advance_batch(samples=1, tokens=0)
        >>> optimizer.step()
        >>> step_schedulers(state, every_batch=None, at_epoch_end=False)  # the LinearScheduler only
        >>> optimizer.param_groups[0]["lr"]
        0.9
    """
    if state.lr_owner is not None:
        return
    for scheduler in state.schedulers:
        composer = is_composer_scheduler(scheduler)
        per_batch = composer if every_batch is None else every_batch
        # A Composer scheduler is a function of time: read again once the epoch is counted, so a
        # schedule in epochs changes at the first batch of the new epoch.
        if per_batch is not at_epoch_end or (composer and at_epoch_end):
            scheduler.step()
