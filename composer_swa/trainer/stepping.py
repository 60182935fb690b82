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
from composer_swa.model_calls import compute_loss, forward_batch
from composer_swa.trainer.checks import check_scalar_loss

if TYPE_CHECKING:
    from composer_swa.events.loop import Loop
    from composer_swa.state import State
    from composer_swa.trainer.guards import RunGuard

__all__: list[str] = []


class TrainingStep:
    """Runs the Trainer's batches, from BATCH_START to BATCH_END, with what the Trainer set up once.

    Args:
        loop: The run's loop (fires the events, counts the batch).
        module: What training calls: the model, DDP around it, or the compiled model.
        loss_fn: The user's loss function, if any.
        autocast: A factory of the context each forward runs in.
        scaler: The fp16 GradScaler, if any.
        guard: Watches the losses (on the device).
        world_size: Processes; samples and tokens count every process's share.
        step_schedulers_every_batch: Step the LR schedulers after every batch (else the Trainer does per epoch).
    """

    def __init__(
        self,
        loop: Loop,
        module: torch.nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]],
        scaler: torch.amp.GradScaler | None,
        guard: RunGuard,
        world_size: int,
        step_schedulers_every_batch: bool,
    ) -> None:
        self.loop, self.module, self.loss_fn, self.autocast, self.scaler = loop, module, loss_fn, autocast, scaler
        self.guard, self.world_size, self.every_batch = guard, world_size, step_schedulers_every_batch
        self.ddp = module if isinstance(module, DistributedDataParallel) else None
        self.device = loop.state.device
        self.move_batches = self.device.type != "cpu"

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
            syncing = self.ddp.no_sync() if not last and self.ddp is not None else contextlib.nullcontext()
            with syncing, self.autocast():
                state.outputs = forward_batch(self.module, microbatch)
                loop.after_forward()
                loss = check_scalar_loss(compute_loss(self.loss_fn, state.outputs, microbatch))
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
        if self.every_batch:
            step_schedulers(state)
        loop.batch_end(samples * self.world_size, tokens * self.world_size)
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


def step_schedulers(state: State) -> None:
    """Steps the LR schedulers, unless an algorithm owns the learning rate now (``state.lr_owner``)."""
    if state.lr_owner is None:
        for scheduler in state.schedulers:
            scheduler.step()
