"""The Trainer: a training loop that fires events, and nothing an algorithm could do instead.

Its arguments, ``fit()`` and ``eval()`` are Composer's (names, defaults, the forms each takes);
:mod:`composer_swa.trainer.arguments` reads those forms and :mod:`composer_swa.trainer.unsupported`
refuses, with the reason, what Composer takes and we do not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from composer_swa.checkpoint import Checkpointer, PreemptionWatcher
from composer_swa.checkpoint.naming import DEFAULT_FILENAME, DEFAULT_LATEST_FILENAME
from composer_swa.checkpoint.options import CheckpointOptions
from composer_swa.distributed.process_group import join_process_group
from composer_swa.events import Algorithm, Callback
from composer_swa.events.loop import Loop
from composer_swa.loggers import Logger, LoggerDestination
from composer_swa.model_calls import ModelCalls
from composer_swa.state import State
from composer_swa.time import Time, TimeUnit, as_time
from composer_swa.trainer.arguments import (
    as_list,
    build_loggers,
    check_composer_forms,
    check_loader,
    eval_batches,
    subset_count,
)
from composer_swa.trainer.checks import check_model, check_optimizers, resolve_device, seed_everything
from composer_swa.trainer.epochs import Epochs
from composer_swa.trainer.evaluation import evaluate
from composer_swa.trainer.fit_arguments import prepare_fit, set_microbatching, shard
from composer_swa.trainer.fit_loop import run_fit
from composer_swa.trainer.guards import RunGuard
from composer_swa.trainer.intervals import RunIntervals
from composer_swa.trainer.parallel import prepare_model
from composer_swa.trainer.precision import autocast_context, check_precision, make_grad_scaler
from composer_swa.trainer.run_name import resolve_run_name
from composer_swa.trainer.stepping import TrainingStep
from composer_swa.trainer.unsupported import FIT_UNSUPPORTED, TRAINER_UNSUPPORTED, refuses_unknown

__all__ = ["Trainer"]

LossFn = Callable[[Any, Any], torch.Tensor]


class Trainer:
    """Trains any ``torch.nn.Module``, firing :class:`~composer_swa.Event` s for algorithms and callbacks.

    The arguments are Composer's, with its defaults and forms (README: "Coming from Composer"); one
    we do not take raises :class:`~composer_swa.trainer.unsupported.UnsupportedArgumentError` saying why.

    A :class:`~composer_swa.models.ComposerModel` is called through Composer's protocol; any other
    module by the rule of :mod:`composer_swa.model_calls` (``model(inputs)`` and ``loss_fn``, cross-entropy
    by default, for ``(inputs, targets)``; ``model(**batch)`` and ``outputs.loss`` for dicts).
    PyTorch schedulers step after every epoch, Composer's (:mod:`composer_swa.optim`) after every batch,
    as in Composer; none while an algorithm owns the LR (``state.lr_owner``).

    Args:
        model: The model. It is moved to ``device``.
        train_dataloader: Training batches; its length defines an epoch (or give them to :meth:`fit`).
        max_duration: ``"10ep"``, ``"2000ba"``, ``"50_000sp"``, ``"1e6tok"``, an int of epochs (or :meth:`fit`'s ``duration``).
        eval_dataloader: Batches for :meth:`eval`, run every ``eval_interval`` and at the end of fit.
        optimizers: One optimizer or a list; defaults to ``SGD(lr=0.1)`` (Composer's ``DecoupledSGDW(lr=0.1)``).
        schedulers: One LR scheduler or a list.
        loss_fn: ``loss_fn(outputs, targets)`` for tuple batches, ``loss_fn(outputs, batch)`` for dicts.
        algorithms: ``None``, one algorithm or a list, run in this order at every event.
        callbacks: ``None``, one callback or a list, run after the algorithms.
        eval_interval: How often to evaluate: ``"1ep"``, ``"500ba"``, ``"0.25dur"``, or an int of epochs;
            ``0`` (any unit) evaluates never, not even at the end of fit.
        device: ``"cpu"``, ``"gpu"``/``"cuda"``, ``"cuda:N"``, ``"mps"``, a ``torch.device``; default CUDA if available.
        precision: ``"fp32"``, ``"amp_bf16"`` or ``"amp_fp16"`` (+ GradScaler); ``"bf16"``/``"fp16"`` alike.
            Default: ``"amp_fp16"`` on CUDA, else ``"fp32"``.
        seed: Seeds Python, NumPy and torch at construction.
        grad_accum: Microbatches per batch; gradients match one full batch (losses weighted by size).
        device_train_microbatch_size: Or: samples per microbatch (an int; not with ``grad_accum``).
        progress_bar: Show a progress bar (only when stderr is a terminal).
        step_schedulers_every_batch: None (Composer's default): PyTorch schedulers per epoch, Composer
            schedulers per batch; True: every scheduler per batch; False: every scheduler per epoch.
        log_interval: How often training loss and LR go to ``loggers``.
        log_to_console: Add a console logger (unless ``loggers`` has one): messages, evaluations, and the
            training loss and LR every ``console_log_interval`` (an int counts epochs).
        console_log_interval: See ``log_to_console``.
        run_dir: A folder for ``metrics.jsonl``.
        loggers: ``None``, one logger destination or a list.
        run_name: Fills ``{run_name}`` in the ``save_*`` paths; default ``$COMPOSER_RUN_NAME``, ``$RUN_NAME``, or
            a generated ``"<unix time>-<adjective>-<animal>"``.
        save_folder: Checkpoints (a format string: ``"ck/{run_name}"``) and, after fit, ``final/`` (safetensors of
            the weights and every average). SIGTERM/SIGINT then save at the next batch boundary and end fit() with
            :class:`~composer_swa.checkpoint.TrainingPreempted` (a ``SystemExit`` with status 0).
        save_filename: A format string with ``{batch}``, and any of ``{epoch}``, ``{sample}``, ``{token}``,
            ``{batch_in_epoch}``, ``{run_name}``, ``{rank}``.
        save_latest_filename: A symlink in ``save_folder`` to the newest checkpoint; ``None`` makes none.
        save_overwrite: Let this run replace checkpoints already in ``save_folder`` (else it refuses to start).
        save_interval: ``"1ep"``, ``"50ba"``, an int of epochs; also at the end of training. ``0``: never.
        save_num_checkpoints_to_keep: Keep the newest N checkpoints; ``-1`` keeps all.
        autoresume: Resume fit() from the newest valid checkpoint in ``save_folder``, if any.
        load_path: A checkpoint to start from (when autoresume finds none).
        load_weights_only: Take only the model weights from ``load_path`` (a checkpoint or ``.safetensors``).
        train_subset_num_batches: End every epoch after this many batches; ``-1``: the whole loader.
        eval_subset_num_batches: Evaluate on this many batches; ``-1``: the whole loader.
        parallelism: Under torchrun: ``"ddp"`` (default) or ``"fsdp"`` (FSDP2 ``fully_shard``). Each process
            reads its share of the data; process 0 alone writes output. Ignored in a single process.
        sync_batch_norm: Convert batch norms to ``SyncBatchNorm`` (CUDA only).

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
        >>> model = torch.nn.Linear(4, 2)
        >>> trainer = Trainer(model=model, train_dataloader=DataLoader(data, batch_size=16), max_duration=2, progress_bar=False)
        >>> trainer.fit()
        >>> trainer.state.timestamp.batch
        Time(8, 'ba')
        >>> trainer.fit(duration="1ba")  # Composer's fit(duration=...) extends the run
        >>> trainer.state.timestamp.batch, trainer.state.max_duration
        (Time(9, 'ba'), Time(9, 'ba'))
    """

    @refuses_unknown("Trainer", TRAINER_UNSUPPORTED)
    def __init__(
        self,
        model: torch.nn.Module,
        train_dataloader: Iterable[Any] | None = None,
        max_duration: Time | str | int | None = None,
        eval_dataloader: Iterable[Any] | None = None,
        optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer] | None = None,
        schedulers: Any | Sequence[Any] | None = None,
        loss_fn: LossFn | None = None,
        algorithms: Algorithm | Sequence[Algorithm] | None = None,
        callbacks: Callback | Sequence[Callback] | None = None,
        eval_interval: Time | str | int = 1,
        device: torch.device | str | None = None,
        precision: str | None = None,
        seed: int | None = None,
        grad_accum: int = 1,
        device_train_microbatch_size: int | str | None = None,
        progress_bar: bool = True,
        step_schedulers_every_batch: bool | None = None,
        log_interval: Time | str | int = "50ba",
        log_to_console: bool = False,
        console_log_interval: Time | str | int = "1ba",
        run_dir: str | Path | None = None,
        loggers: LoggerDestination | Sequence[LoggerDestination] | None = None,
        run_name: str | None = None,
        save_folder: str | Path | None = None,
        save_filename: str = DEFAULT_FILENAME,
        save_latest_filename: str | None = DEFAULT_LATEST_FILENAME,
        save_overwrite: bool = False,
        save_interval: Time | str | int = "1ep",
        save_num_checkpoints_to_keep: int = -1,
        autoresume: bool = False,
        load_path: str | Path | None = None,
        load_weights_only: bool = False,
        train_subset_num_batches: int = -1,
        eval_subset_num_batches: int = -1,
        parallelism: str | None = None,
        sync_batch_norm: bool = False,
    ) -> None:
        model = check_model(model)
        check_composer_forms(
            train_dataloader=train_dataloader, eval_dataloader=eval_dataloader, eval_interval=eval_interval,
            save_interval=save_interval, save_folder=save_folder, load_path=load_path, autoresume=autoresume,
            run_name=run_name, save_filename=save_filename,
        )  # fmt: skip
        self.device = resolve_device(device)
        self.distributed = join_process_group(self.device)
        if seed is not None:
            seed_everything(seed + self.distributed.rank)  # different dropout and augmentation draws on each process
        model.to(self.device)
        optimizers = [torch.optim.SGD(model.parameters(), lr=0.1)] if optimizers is None else as_list(optimizers, "optimizers")
        check_optimizers(optimizers, model)
        self._seed = seed or 0
        model, self._train_module, self._eval_module = prepare_model(
            model, self.device, self.distributed, optimizers, parallelism, sync_batch_norm
        )  # training calls the model, DDP around it, or the compiled model; the State holds the unwrapped one
        calls = ModelCalls(model, loss_fn)  # a ComposerModel through its protocol, any other module by the batch rule
        self.state = State(
            model=model,
            max_duration=None if max_duration is None else as_time(max_duration, "max_duration", TimeUnit.EPOCH),
            train_dataloader=None if train_dataloader is None else shard(self, train_dataloader, "train_dataloader"),
            eval_dataloader=None if eval_dataloader is None else shard(self, eval_dataloader, "eval_dataloader"),
            optimizers=optimizers,
            schedulers=as_list(schedulers, "schedulers"),
            algorithms=as_list(algorithms, "algorithms"),
            callbacks=as_list(callbacks, "callbacks"),
            device=self.device,
        )
        self.state.run_name = resolve_run_name(run_name)
        self.state.precision = check_precision(precision, self.device)
        self.state.train_subset_num_batches = subset_count(train_subset_num_batches, "train_subset_num_batches")
        self._eval_subset = subset_count(eval_subset_num_batches, "eval_subset_num_batches")
        self._autocast = autocast_context(self.state.precision, self.device)
        set_microbatching(self, device_train_microbatch_size, grad_accum)
        if self.state.ready_to_train:
            _ = self.state.max_batches  # resolving now reports a bad max_duration before any work
        self.intervals = RunIntervals(eval_interval, log_interval, console_log_interval, log_to_console)
        self.progress_bar = progress_bar and self.distributed.is_rank_zero
        self._scaler = make_grad_scaler(self.state.precision, self.device)
        self._last_eval_batch = -1
        self._fitted = False
        options = CheckpointOptions.from_arguments(
            save_folder, save_interval, save_num_checkpoints_to_keep, autoresume, load_path, load_weights_only,
            save_filename, save_latest_filename, save_overwrite, self.state.run_name,
        )  # fmt: skip
        self.checkpointer = Checkpointer(options)
        self.state.save_folder = self.checkpointer.options.save_folder
        self._preemption = PreemptionWatcher()
        self._guard = RunGuard(model, self.device)
        # Process 0 alone writes to the console and to files.
        destinations, self._console = build_loggers(loggers, log_to_console, run_dir, self.distributed.is_rank_zero)
        self.logger = Logger(destinations)
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

    @refuses_unknown("Trainer.fit", FIT_UNSUPPORTED)
    def fit(
        self,
        *,
        train_dataloader: Iterable[Any] | None = None,
        train_subset_num_batches: int | None = None,
        duration: Time | str | int | None = None,
        reset_time: bool = False,
        eval_dataloader: Iterable[Any] | None = None,
        eval_subset_num_batches: int | None = None,
        eval_interval: Time | str | int | None = None,
        device_train_microbatch_size: int | str | None = None,
    ) -> None:
        """Trains until ``max_duration``, evaluating every ``eval_interval`` and at the end.

        A later call goes on from where the last one ended, as Composer's: ``duration`` (an int counts
        epochs) is added to the time trained so far, in its unit; ``reset_time=True`` starts the clock at
        zero again (weights, optimizer state and averages are kept). A run stopped mid-epoch goes on with
        the rest of that epoch. Each other argument, when given, replaces the Trainer's.

        Raises:
            ValueError: A later call with neither ``duration`` nor ``reset_time``: nothing is left to train.
            TrainingPreempted: After SIGTERM/SIGINT with ``save_folder`` set (see :mod:`composer_swa.trainer.ending`).
            NonFiniteError: A training loss or weight became NaN or infinite (see :mod:`composer_swa.trainer.guards`).
            ModelStructureError: The model's parameters changed during training.
            SaveFolderInUseError: Another live run holds ``save_folder``.
        """
        prepare_fit(
            self, train_dataloader, train_subset_num_batches, duration, reset_time,
            eval_dataloader, eval_subset_num_batches, eval_interval, device_train_microbatch_size,
        )  # fmt: skip
        self._fitted = True
        run_fit(self)

    def _save_checkpoint(self) -> Path:
        self._guard.check_run()
        return self.checkpointer.save(self.state, self.engine, self._scaler, self._epochs.rng_at_start)

    # Evaluation and logging -------------------------------------------------------------------

    @refuses_unknown("Trainer.eval", {})
    def eval(self, eval_dataloader: Iterable[Any] | None = None, subset_num_batches: int = -1) -> dict[str, float]:
        """Evaluates what ``state.model`` holds now; returns and logs the metrics (also in ``state.eval_metrics``).

        Args:
            eval_dataloader: Data for this evaluation only (Composer's); default: the Trainer's ``eval_dataloader``.
            subset_num_batches: Evaluate on this many batches; ``-1``: the Trainer's ``eval_subset_num_batches``.
        """
        if eval_dataloader is not None:
            check_loader(eval_dataloader, "eval_dataloader")
            eval_dataloader = shard(self, eval_dataloader, "eval_dataloader")
        subset = subset_count(subset_num_batches, "subset_num_batches") or self._eval_subset
        return self._evaluate(eval_dataloader, subset)

    def _evaluate(self, loader: Iterable[Any] | None = None, subset: int | None = None) -> dict[str, float]:
        state = self.state
        loader = state.eval_dataloader if loader is None else loader
        if loader is None:
            raise ValueError("Trainer.eval() needs an eval_dataloader; pass one to the Trainer or to eval()")
        self._guard.check_run()  # evaluating NaN weights would report argmax(NaN) as accuracy
        batches = eval_batches(loader, subset if subset is not None else self._eval_subset)
        metrics = evaluate(self.loop, self._eval_module, batches, self._step.calls, self._autocast)
        self._last_eval_batch = state.timestamp.batch_count
        self.logger.log_metrics(metrics, step=state.timestamp.batch_count)
        return metrics
