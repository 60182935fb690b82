"""The Trainer: a training loop that fires events, and nothing an algorithm could do instead."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from composer_swa.batches import batch_num_samples, batch_num_tokens, split_batch, to_device
from composer_swa.checkpoint import Checkpointer, PreemptionWatcher, capture_rng, restore_rng, skip_consumed_batches
from composer_swa.checkpoint.folder_lock import owning_save_folder
from composer_swa.checkpoint.options import CheckpointOptions
from composer_swa.distributed.process_group import join_process_group, reduce_sum
from composer_swa.distributed.sampling import set_sampler_epoch
from composer_swa.events import Algorithm, Callback, Engine, Event
from composer_swa.loggers import ConsoleLogger, JSONLinesLogger, Logger, LoggerDestination
from composer_swa.state import State
from composer_swa.time import Time, TimeUnit, as_time
from composer_swa.trainer.checks import (
    check_grad_accum,
    check_model,
    check_optimizers,
    check_scalar_loss,
    resolve_device,
    seed_everything,
)
from composer_swa.trainer.ending import finish_fit, save_at_boundary
from composer_swa.trainer.evaluation import MetricTotals, accuracy_counts
from composer_swa.trainer.guards import RunGuard
from composer_swa.trainer.model_calls import compute_loss, forward_batch
from composer_swa.trainer.parallel import prepare_model, shard_dataloaders
from composer_swa.trainer.precision import autocast_context, check_precision, make_grad_scaler
from composer_swa.trainer.stepping import step_optimizers

__all__ = ["Trainer"]

LossFn = Callable[[Any, Any], torch.Tensor]


class Trainer:
    """Trains any ``torch.nn.Module``, firing :class:`~composer_swa.Event` s for algorithms and callbacks.

    Batches are ``(inputs, targets)`` tuples or lists, which run ``model(inputs)`` and
    ``loss_fn(outputs, targets)`` (cross-entropy by default), or dicts, which run ``model(**batch)``
    and take ``outputs.loss`` / ``outputs["loss"]`` unless ``loss_fn(outputs, batch)`` is given.

    Schedulers are ordinary ``torch.optim.lr_scheduler`` objects, stepped after every optimizer
    step (``step_schedulers_every_batch=False``: after every epoch), except while an algorithm owns
    the learning rate (``state.lr_owner``, e.g. SWA with ``schedule_swa_lr=True``).

    Args:
        model: The model. It is moved to ``device``.
        train_dataloader: Training batches; its length defines an epoch.
        max_duration: Run length: ``"10ep"``, ``"2000ba"``, ``"50_000sp"`` or ``"1e6tok"``.
        eval_dataloader: Batches for :meth:`eval`, run every ``eval_interval`` and at the end of fit.
        optimizers: One optimizer or a list; defaults to ``SGD(lr=0.1)``.
        schedulers: One LR scheduler or a list.
        loss_fn: ``loss_fn(outputs, targets)`` for tuple batches, ``loss_fn(outputs, batch)`` for dicts.
        algorithms: Algorithms, run in this order at every event.
        callbacks: Callbacks, run after the algorithms.
        eval_interval: How often to evaluate: ``"1ep"``, ``"500ba"``, ``"0.25dur"``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``; defaults to CUDA when available.
        precision: ``"fp32"`` (default), ``"bf16"`` (autocast) or ``"fp16"`` (autocast + GradScaler).
        seed: Seeds Python, NumPy and torch at construction.
        grad_accum: Microbatches per batch; gradients match one full batch (losses weighted by size).
        progress_bar: Show a progress bar (only when stderr is a terminal).
        step_schedulers_every_batch: Step schedulers per batch (default) or per epoch.
        log_interval: How often training loss and LR are logged.
        run_dir: A folder for ``metrics.jsonl``.
        loggers: Logger destinations; defaults to the console (plus JSON lines with ``run_dir``).
        save_folder: Folder for checkpoints (``ep{E}-ba{B}.pt``) and, after fit, ``final/`` with the
            weights and every average as safetensors. While it is set, SIGTERM/SIGINT save a checkpoint
            at the next batch boundary and end fit() with :class:`~composer_swa.checkpoint.TrainingPreempted`
            (a ``SystemExit`` with status 0).
        save_interval: How often to checkpoint (``"1ep"``, ``"50ba"``...); also at the end of training.
        save_num_checkpoints_to_keep: Keep the newest N checkpoints; ``-1`` keeps all.
        autoresume: Resume fit() from the newest valid checkpoint in ``save_folder``, if any.
        load_path: A checkpoint to start from (when autoresume finds none).
        load_weights_only: Take only the model weights from ``load_path`` (a checkpoint or ``.safetensors``).
        parallelism: Under torchrun (more than one process): ``"ddp"`` (the default there) replicates the
            model with ``DistributedDataParallel``; ``"fsdp"`` shards it with FSDP2 ``fully_shard``. The
            Trainer joins the process group, gives each process its share of the data, and leaves
            console, file and checkpoint output to process 0. Ignored in a single process.
        sync_batch_norm: Convert batch norms to ``SyncBatchNorm`` (CUDA only), so training normalizes
            with statistics over all processes' batches.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
        >>> model = torch.nn.Linear(4, 2)
        >>> trainer = Trainer(model, DataLoader(data, batch_size=16), max_duration="2ep", progress_bar=False, loggers=[])
        >>> trainer.fit()
        >>> trainer.state.timestamp.batch
        Time(8, 'ba')
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train_dataloader: Iterable[Any],
        max_duration: Time | str | int,
        eval_dataloader: Iterable[Any] | None = None,
        optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer] | None = None,
        schedulers: Any | Sequence[Any] | None = None,
        loss_fn: LossFn | None = None,
        algorithms: Sequence[Algorithm] = (),
        callbacks: Sequence[Callback] = (),
        eval_interval: Time | str | int = "1ep",
        device: torch.device | str | None = None,
        precision: str | None = None,
        seed: int | None = None,
        grad_accum: int = 1,
        progress_bar: bool = True,
        step_schedulers_every_batch: bool = True,
        log_interval: Time | str | int = "50ba",
        run_dir: str | Path | None = None,
        loggers: Sequence[LoggerDestination] | None = None,
        save_folder: str | Path | None = None,
        save_interval: Time | str | int = "1ep",
        save_num_checkpoints_to_keep: int = -1,
        autoresume: bool = False,
        load_path: str | Path | None = None,
        load_weights_only: bool = False,
        parallelism: str | None = None,
        sync_batch_norm: bool = False,
    ) -> None:
        model = check_model(model)
        self.device = resolve_device(device)
        self.distributed = join_process_group(self.device)
        if seed is not None:
            seed_everything(seed + self.distributed.rank)  # different dropout and augmentation draws on each process
        model.to(self.device)
        optimizers = [torch.optim.SGD(model.parameters(), lr=0.1)] if optimizers is None else _as_list(optimizers)
        check_optimizers(optimizers, model)
        train_dataloader, eval_dataloader = shard_dataloaders(train_dataloader, eval_dataloader, self.distributed, seed or 0)
        model, self._train_module, self._eval_module = prepare_model(
            model, self.device, self.distributed, optimizers, parallelism, sync_batch_norm
        )  # training calls the model, DDP around it, or the compiled model; the State holds the unwrapped one
        self._ddp = self._train_module if isinstance(self._train_module, DistributedDataParallel) else None
        self.state = State(
            model=model,
            max_duration=max_duration,
            train_dataloader=train_dataloader,
            eval_dataloader=eval_dataloader,
            optimizers=optimizers,
            schedulers=_as_list(schedulers),
            algorithms=algorithms,
            callbacks=callbacks,
            device=self.device,
        )
        self.state.precision = check_precision(precision, self.device)
        self.state.grad_accum = check_grad_accum(grad_accum)
        self.state.run_forward = self._forward_for_statistics
        _ = self.state.max_batches  # resolving now reports a bad max_duration before any work
        self.eval_interval = as_time(eval_interval, "eval_interval")
        self._log_every = max(1, self.state.to_batches(as_time(log_interval, "log_interval")))
        self.loss_fn = loss_fn
        self.step_schedulers_every_batch = step_schedulers_every_batch
        self.progress_bar = progress_bar
        self._autocast = autocast_context(self.state.precision, self.device)
        self._scaler = make_grad_scaler(self.state.precision, self.device)
        self._move_batches = self.device.type != "cpu"
        self._last_eval_batch = -1
        self.checkpointer = Checkpointer(
            CheckpointOptions.from_arguments(
                save_folder, save_interval, save_num_checkpoints_to_keep, autoresume, load_path, load_weights_only
            )
        )
        self._preemption = PreemptionWatcher()
        self._guard = RunGuard(model, self.device)
        self._epoch_rng: dict[str, Any] = {}

        if not self.distributed.is_rank_zero:
            loggers, self.progress_bar = [], False  # process 0 alone writes to the console and to files
        elif loggers is None:
            loggers = [ConsoleLogger()] + ([JSONLinesLogger(Path(run_dir) / "metrics.jsonl")] if run_dir else [])
        self.logger = Logger(loggers)
        self.engine = Engine(self.state, self.logger)
        self.engine.run_event(Event.INIT)

    # The loop ---------------------------------------------------------------------------------

    def fit(self) -> None:
        """Trains until ``max_duration``, evaluating every ``eval_interval`` and at the end.

        Raises:
            TrainingPreempted: After SIGTERM/SIGINT with ``save_folder`` set, once the checkpoint is written
                (also when the signal comes after the last batch: see :mod:`composer_swa.trainer.ending`).
            NonFiniteError: A training loss or weight became NaN or infinite (see :mod:`composer_swa.trainer.guards`).
            ModelStructureError: The model's parameters changed during training.
            SaveFolderInUseError: Another live run holds ``save_folder``.
        """
        state, engine, checkpointer = self.state, self.engine, self.checkpointer
        state.model.train()
        watching = self._preemption.watching() if checkpointer.saving else contextlib.nullcontext()
        # One run per save_folder while fit() runs; SIGTERM/SIGINT are noted from here to the end of the export.
        with owning_save_folder(checkpointer.save_folder, self.device) as folder_notes, watching:
            resumed = checkpointer.restore(state, engine, self._scaler)
            engine.run_event(Event.FIT_START)
            for note in folder_notes + checkpointer.notes:  # after FIT_START, where a run's loggers may first be attached
                self.logger.log_message(note, step=state.timestamp.batch_count)
            checkpointer.resolve(state)
            eval_every = self._eval_every_batches()
            show = self.progress_bar and sys.stderr.isatty()
            with tqdm(
                total=state.max_batches, initial=state.timestamp.batch_count, unit="ba", dynamic_ncols=True, disable=not show
            ) as bar:
                while not state.is_finished:
                    epoch_complete = True
                    for batch in self._epoch_batches(resumed):
                        self._train_batch(batch)
                        bar.update(1)
                        if eval_every and state.timestamp.batch_count % eval_every == 0:
                            self.eval()
                        if state.is_finished:  # max_duration may fall mid-epoch
                            epoch_complete = state.timestamp.batch_in_epoch == state.batches_per_epoch
                            break
                        if state.timestamp.batch_in_epoch != state.batches_per_epoch:  # else: after EPOCH_END
                            save_at_boundary(self, epoch_ended=False)
                    resumed = None
                    if state.timestamp.batch_in_epoch == 0:
                        raise ValueError("train_dataloader yielded no batches in an epoch; it must yield at least one")
                    if epoch_complete:
                        self._end_epoch()
                        save_at_boundary(self, epoch_ended=True)
            finish_fit(self)

    def _epoch_batches(self, resumed: dict[str, Any] | None) -> Iterator[Any]:
        """The epoch's batch iterator; a run resumed mid-epoch gets the rest of the saved epoch."""
        state = self.state
        loader = state.train_dataloader
        set_sampler_epoch(loader, int(state.timestamp.epoch_count))
        if resumed is not None and state.timestamp.batch_in_epoch > 0:
            self._epoch_rng = resumed["epoch_rng"]  # EPOCH_START already ran before the checkpoint
            return skip_consumed_batches(loader, resumed, state.timestamp.batch_in_epoch)
        if resumed is not None:
            restore_rng(resumed["rng"], loader)
        self.engine.run_event(Event.EPOCH_START)
        # A shuffling loader draws its order from these generators when its iterator is created.
        self._epoch_rng = capture_rng(loader)
        return iter(loader)

    def _save_checkpoint(self) -> Path:
        self._guard.check_run()
        return self.checkpointer.save(self.state, self.engine, self._scaler, self._epoch_rng)

    def _train_batch(self, batch: Any) -> None:
        state, engine = self.state, self.engine
        state.batch = batch
        engine.run_event(Event.BATCH_START)
        samples = batch_num_samples(batch)
        tokens = batch_num_tokens(batch)
        if self._move_batches:
            batch = to_device(batch, self.device)
        microbatches = split_batch(batch, state.grad_accum)
        batch_loss = torch.zeros((), device=self.device) if len(microbatches) > 1 else None
        for index, microbatch in enumerate(microbatches):
            # DDP averages gradients across processes once, on the last microbatch.
            last = index == len(microbatches) - 1
            syncing = self._ddp.no_sync() if not last and self._ddp is not None else contextlib.nullcontext()
            with syncing, self._autocast():
                state.outputs = forward_batch(self._train_module, microbatch)
                engine.run_event(Event.AFTER_FORWARD)
                loss = check_scalar_loss(compute_loss(self.loss_fn, state.outputs, microbatch))
            if batch_loss is not None:
                # Weight each microbatch by its size so the summed gradient is the full batch's mean.
                loss = loss * (batch_num_samples(microbatch) / samples)
                batch_loss += loss.detach()
            state.loss = loss
            self._guard.note_loss(loss, state.timestamp.batch_count + 1)
            engine.run_event(Event.AFTER_LOSS)
            with syncing:
                (self._scaler.scale(loss) if self._scaler is not None else loss).backward()
            engine.run_event(Event.AFTER_BACKWARD)
        step_optimizers(state, engine, self._scaler)  # fires AFTER_TRAIN_BATCH
        if self.step_schedulers_every_batch and state.lr_owner is None:
            for scheduler in state.schedulers:
                scheduler.step()
        # Time counts global batches; samples and tokens count every process's (each takes an equal share).
        state.timestamp.advance_batch(samples * self.distributed.world_size, tokens * self.distributed.world_size)
        self._guard.before_averaging(state, Event.BATCH_END)
        engine.run_event(Event.BATCH_END)
        if state.timestamp.batch_count % self._log_every == 0:
            self._log_training(batch_loss if batch_loss is not None else state.loss)

    def _end_epoch(self) -> None:
        state = self.state
        state.timestamp.advance_epoch()
        if not self.step_schedulers_every_batch and state.lr_owner is None:
            for scheduler in state.schedulers:
                scheduler.step()
        self._guard.before_averaging(state, Event.EPOCH_END)
        self.engine.run_event(Event.EPOCH_END)
        every = int(self.eval_interval.value)
        if (
            state.eval_dataloader is not None
            and self.eval_interval.unit is TimeUnit.EPOCH
            and state.timestamp.epoch_count % every == 0
        ):
            self.eval()

    # Evaluation -------------------------------------------------------------------------------

    def eval(self) -> dict[str, float]:
        """Evaluates what ``state.model`` holds now on ``eval_dataloader``; returns and logs the metrics."""
        state, engine = self.state, self.engine
        if state.eval_dataloader is None:
            raise ValueError("Trainer.eval() needs an eval_dataloader; pass one to the Trainer")
        self._guard.check_run()  # evaluating NaN weights would report argmax(NaN) as accuracy
        engine.run_event(Event.EVAL_START)
        was_training = state.model.training
        state.model.eval()
        totals = MetricTotals()
        with torch.no_grad():
            for batch in state.eval_dataloader:
                batch = to_device(batch, self.device) if self._move_batches else batch
                with self._autocast():
                    state.outputs = forward_batch(self._eval_module, batch)
                    loss = check_scalar_loss(compute_loss(self.loss_fn, state.outputs, batch))
                targets = batch[1] if isinstance(batch, (list, tuple)) else None
                totals.add(loss, batch_num_samples(batch), accuracy_counts(state.outputs, targets))
                engine.run_event(Event.EVAL_BATCH_END)
        state.model.train(was_training)
        totals.reduce_across_processes(self.device)
        state.eval_metrics = totals.compute()
        engine.run_event(Event.EVAL_END)
        self._last_eval_batch = state.timestamp.batch_count
        self.logger.log_metrics(state.eval_metrics, step=state.timestamp.batch_count)
        return state.eval_metrics

    def _forward_for_statistics(self, batch: Any) -> Any:
        """One batch forward as in training (device, precision, microbatches), for statistics passes."""
        batch = to_device(batch, self.device)
        outputs = None
        for microbatch in split_batch(batch, self.state.grad_accum):
            with self._autocast():
                outputs = forward_batch(self.state.model, microbatch)
        return outputs

    # Bookkeeping ------------------------------------------------------------------------------

    def _eval_every_batches(self) -> int:
        if self.state.eval_dataloader is None or self.eval_interval.unit is TimeUnit.EPOCH:
            return 0
        return max(1, self.state.to_batches(self.eval_interval))

    def _log_training(self, loss: torch.Tensor | None) -> None:
        self._guard.check_losses()  # the logged loss waits on the device anyway
        if loss is not None and self.distributed.world_size > 1:
            loss = reduce_sum(loss.detach().clone()) / self.distributed.world_size
        metrics = {"train/loss": float(loss.detach()) if loss is not None else float("nan")}
        if self.state.optimizers:
            metrics["train/lr"] = float(self.state.optimizers[0].param_groups[0]["lr"])
        self.logger.log_metrics(metrics, step=self.state.timestamp.batch_count)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
