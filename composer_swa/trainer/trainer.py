"""The Trainer: a training loop that fires events, and nothing an algorithm could do instead."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from composer_swa.checkpoint import Checkpointer, PreemptionWatcher
from composer_swa.checkpoint.folder_lock import owning_save_folder
from composer_swa.checkpoint.options import CheckpointOptions
from composer_swa.distributed.process_group import join_process_group, reduce_sum
from composer_swa.events import Algorithm, Callback
from composer_swa.events.loop import Loop
from composer_swa.loggers import ConsoleLogger, JSONLinesLogger, Logger, LoggerDestination
from composer_swa.model_calls import ModelCalls, statistics_forward
from composer_swa.schedule import ResolvedSchedule, Schedule
from composer_swa.state import State
from composer_swa.time import Time, TimeUnit
from composer_swa.trainer.checks import check_grad_accum, check_model, check_optimizers, resolve_device, seed_everything
from composer_swa.trainer.ending import finish_fit, save_at_boundary
from composer_swa.trainer.epochs import Epochs
from composer_swa.trainer.evaluation import evaluate
from composer_swa.trainer.guards import RunGuard
from composer_swa.trainer.parallel import prepare_model, shard_dataloaders
from composer_swa.trainer.precision import autocast_context, check_precision, make_grad_scaler
from composer_swa.trainer.stepping import TrainingStep

__all__ = ["Trainer"]

LossFn = Callable[[Any, Any], torch.Tensor]


class Trainer:
    """Trains any ``torch.nn.Module``, firing :class:`~composer_swa.Event` s for algorithms and callbacks.

    A :class:`~composer_swa.models.ComposerModel` is called through its protocol, as in Composer
    (``model(batch)``, ``model.loss(outputs, batch)``, ``eval_forward`` and ``update_metric`` on its
    ``get_metrics(is_train=False)``). For any other module, batches are ``(inputs, targets)`` tuples
    or lists, which run ``model(inputs)`` and ``loss_fn(outputs, targets)`` (cross-entropy by
    default), or dicts, which run ``model(**batch)``
    and take ``outputs.loss`` / ``outputs["loss"]`` unless ``loss_fn(outputs, batch)`` is given.

    Schedulers are ``torch.optim.lr_scheduler`` objects, stepped after every epoch as in Composer
    (``step_schedulers_every_batch=True``: after every batch), or Composer schedulers
    (:mod:`composer_swa.optim`), stepped after every batch; none step while an algorithm owns
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
        step_schedulers_every_batch: None (Composer's default): PyTorch schedulers per epoch, Composer
            schedulers per batch; True: every scheduler per batch; False: every scheduler per epoch.
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
        step_schedulers_every_batch: bool | None = None,
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
        calls = ModelCalls(model, loss_fn)  # a ComposerModel through its protocol, any other module by the batch rule
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
        self._autocast = autocast_context(self.state.precision, self.device)
        self.state.run_forward = statistics_forward(model, self.device, self._autocast, self.state.grad_accum)
        _ = self.state.max_batches  # resolving now reports a bad max_duration before any work
        # Resolved against the run's length at FIT_START; parsed now, so a bad interval fails before any work.
        self._eval_schedule = Schedule(eval_interval, argument="eval_interval")
        self._log_schedule = Schedule(log_interval, argument="log_interval")
        self._eval_at: ResolvedSchedule | None = None
        self.progress_bar = progress_bar
        self._scaler = make_grad_scaler(self.state.precision, self.device)
        self._last_eval_batch = -1
        self.checkpointer = Checkpointer(
            CheckpointOptions.from_arguments(
                save_folder, save_interval, save_num_checkpoints_to_keep, autoresume, load_path, load_weights_only
            )
        )
        self.state.save_folder = self.checkpointer.options.save_folder
        self._preemption = PreemptionWatcher()
        self._guard = RunGuard(model, self.device)

        if not self.distributed.is_rank_zero:
            loggers, self.progress_bar = [], False  # process 0 alone writes to the console and to files
        elif loggers is None:
            loggers = [ConsoleLogger()] + ([JSONLinesLogger(Path(run_dir) / "metrics.jsonl")] if run_dir else [])
        self.logger = Logger(loggers)
        if calls.composer_model is not None:
            calls.composer_model.logger = self.logger  # as Composer's Trainer gives it (at INIT)
        #: The driver every loop shares (AlgorithmRunner's too): it fires the events, counts time, closes epochs.
        self.loop = Loop(self.state, self.logger, before_update=self._guard.before_averaging)  # fires INIT
        self.engine = self.loop.engine
        self._epochs = Epochs(self.loop)
        self._step = TrainingStep(
            self.loop, self._train_module, calls, self._autocast, self._scaler, self._guard,
            self.distributed.world_size, step_schedulers_every_batch,
        )  # fmt: skip

    @property
    def loss_fn(self) -> LossFn | None:
        """The loss function training and evaluation call (``None``: the default rule)."""
        return self._step.calls.loss_fn

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
        state, loop, checkpointer = self.state, self.loop, self.checkpointer
        state.model.train()
        watching = self._preemption.watching() if checkpointer.saving else contextlib.nullcontext()
        # One run per save_folder while fit() runs; SIGTERM/SIGINT are noted from here to the end of the export.
        with owning_save_folder(checkpointer.options.save_folder, self.device) as folder_notes, watching:
            checkpoint = checkpointer.restore(state, self.engine, self._scaler)
            loop.fit_start()
            for note in folder_notes + checkpointer.notes:  # after FIT_START, where a run's loggers may first be attached
                self.logger.log_message(note, step=state.timestamp.batch_count)
            self._resolve_schedules()
            if checkpoint is not None and not state.is_finished:
                self._epochs.resume(checkpoint)
            show = self.progress_bar and sys.stderr.isatty()
            with tqdm(
                total=state.max_batches, initial=state.timestamp.batch_count, unit="ba", dynamic_ncols=True, disable=not show
            ) as bar:
                while not state.is_finished:
                    for batch in self._epochs.next_epoch():
                        self._train_batch(batch)
                        bar.update(1)
                        if self._evaluates(at_epoch_end=False):
                            self.eval()
                        if state.is_finished:
                            break
                        if not loop.epoch_is_full:  # else: saved after EPOCH_END
                            save_at_boundary(self, epoch_ended=False)
                    if state.timestamp.batch_in_epoch == 0:
                        raise ValueError("train_dataloader yielded no batches in an epoch; it must yield at least one")
                    if loop.epoch_is_full or not state.is_finished:  # max_duration may fall mid-epoch
                        self._end_epoch()
                        save_at_boundary(self, epoch_ended=True)
            finish_fit(self)

    def _resolve_schedules(self) -> None:
        """Evaluation, logging and checkpoint intervals as batch (epoch) counts for this run, at FIT_START."""
        state = self.state
        self.checkpointer.resolve(state)
        self._eval_at = self._eval_schedule.resolve(state.resolver) if state.eval_dataloader is not None else None
        log = self._log_schedule
        if log.at_epoch_end:  # the training loss is logged at a batch's end: "2ep" means every two epochs' batches
            log = Schedule(Time(state.to_batches(log.interval), TimeUnit.BATCH), argument=log.argument)
        self._log_at = log.resolve(state.resolver)

    def _evaluates(self, at_epoch_end: bool) -> bool:
        return self._eval_at is not None and self._eval_at.fires(self.state.timestamp, at_epoch_end)

    def _train_batch(self, batch: Any) -> None:
        loss = self._step.run(batch)  # BATCH_START ... BATCH_END
        if self._log_at.fires(self.state.timestamp, at_epoch_end=False):
            self._log_training(loss)

    def _end_epoch(self) -> None:
        self.loop.end_epoch(counted=self._step.step_schedulers_after_epoch)
        if self._evaluates(at_epoch_end=True):
            self.eval()

    def _save_checkpoint(self) -> Path:
        self._guard.check_run()
        return self.checkpointer.save(self.state, self.engine, self._scaler, self._epochs.rng_at_start)

    # Evaluation and logging -------------------------------------------------------------------

    def eval(self) -> dict[str, float]:
        """Evaluates what ``state.model`` holds now on ``eval_dataloader``; the metrics go to ``state.eval_metrics["eval"]``
        (Composer's shape), their values are returned and logged as ``"eval/{name}"`` (see :mod:`composer_swa.metrics`)."""
        state = self.state
        if state.eval_dataloader is None:
            raise ValueError("Trainer.eval() needs an eval_dataloader; pass one to the Trainer")
        self._guard.check_run()  # evaluating NaN weights would report argmax(NaN) as accuracy
        metrics = evaluate(self.loop, self._eval_module, state.eval_dataloader, self._step.calls, self._autocast)
        self._last_eval_batch = state.timestamp.batch_count
        self.logger.log_metrics(metrics, step=state.timestamp.batch_count)
        return metrics

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
