"""composer_swa's algorithms inside ``transformers.Trainer``, as a ``TrainerCallback``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from transformers import TrainerCallback
except ImportError as error:  # the core never imports this module; only this adapter needs transformers
    raise ImportError(
        "composer_swa.integrations.HuggingFaceCallback needs transformers and accelerate: pip install 'composer_swa[hf]'"
    ) from error

from composer_swa.batch_resolver import BatchResolver
from composer_swa.checkpoint.files import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, read_checkpoint, write_checkpoint
from composer_swa.events import Event, Resource
from composer_swa.integrations.adapter import FrameworkAdapter
from composer_swa.loader_facts import infer_tokens_per_sample
from composer_swa.time import Time, TimeUnit

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from composer_swa.events import Algorithm, Callback
    from composer_swa.loggers import LoggerDestination

__all__ = ["HuggingFaceCallback"]

#: The file each ``checkpoint-N`` folder receives: the timestamp and the algorithms' state.
STATE_FILE_NAME = "composer_swa_state.pt"

_NO_EPOCH_LENGTH = (
    "transformers.Trainer trains from a dataset without a length (an IterableDataset, run for max_steps), "
    "so an epoch has no known number of optimizer steps"
)


class HuggingFaceCallback(FrameworkAdapter, TrainerCallback):
    """Runs composer_swa algorithms (SWA, EMA, LAWA) inside ``transformers.Trainer``.

    Hooks map to events: ``on_train_begin`` → FIT_START, ``on_step_begin`` → BATCH_START,
    ``on_step_end`` → BATCH_END (one per optimizer step, so gradient accumulation is one batch),
    the epoch's last step → EPOCH_END, ``on_train_end`` → FIT_END. The run's length is the Trainer's
    ``max_steps``, so ``"0.7dur"`` means 70% of its optimizer steps; ``"ep"`` times use its steps per
    epoch. SWA's batch-norm pass iterates the Trainer's train dataloader with ``model(**batch)``.

    Evaluation: with ``eval_with_average=True`` the average is swapped in when the Trainer is about
    to evaluate (``control.should_evaluate``) and the live weights come back in ``on_evaluate``,
    before any checkpoint is written. Checkpoints: ``on_save`` writes :data:`STATE_FILE_NAME` into the
    ``checkpoint-N`` folder; ``trainer.train(resume_from_checkpoint=...)`` reads it back from
    ``output_dir/checkpoint-N`` (or ``resume_from``). After training the model holds what the
    algorithms leave in it (SWA's average with fresh statistics), so ``trainer.save_model()`` and
    ``trainer.evaluate()`` use the averaged weights.

    While SWA schedules the LR the Trainer's scheduler keeps stepping (its value is overwritten at
    each step begin), so the logged ``learning_rate`` is the scheduler's, and after an early
    ``swa_end`` the scheduler goes on from its own step count rather than where SWA took over.

    Args:
        algorithms: composer_swa algorithms, in the order they run.
        callbacks: composer_swa callbacks.
        loggers: Where algorithms' messages go; default: the console.
        forward: Runs the model on one batch for statistics passes; default ``model(**batch)``.
        resume_from: The ``checkpoint-N`` folder (or the state file) to resume from, when it is not
            under ``args.output_dir``.

    Gradient clipping: use ``TrainingArguments(max_grad_norm=...)``; ``GradientClipping`` is refused
    (no hook of the Trainer always sees unscaled fp16 gradients before the step).

    Raises:
        ValueError: An algorithm replaces the optimizer (SWATS) or acts at AFTER_TRAIN_BATCH
            (GradientClipping); at ``on_train_begin``, also when ``load_best_model_at_end`` would
            replace the final weights an algorithm produced.

    Example:
        >>> from composer_swa import SWA
        >>> callback = HuggingFaceCallback([SWA(swa_start="0.7dur", update_interval="5ba")])
        >>> # transformers.Trainer(model, args, train_dataset=..., callbacks=[callback]).train()
    """

    start_hook = "on_train_begin"

    def __init__(
        self,
        algorithms: Sequence[Algorithm],
        *,
        callbacks: Sequence[Callback] = (),
        loggers: Sequence[LoggerDestination] | None = None,
        forward: Callable[[Any], Any] | None = None,
        resume_from: str | Path | None = None,
    ) -> None:
        for algorithm in algorithms:
            if Event.AFTER_TRAIN_BATCH in getattr(algorithm, "events", ()):
                raise ValueError(
                    f"{algorithm.name} acts on the gradients before the optimizer step, where transformers.Trainer has "
                    "no hook that always sees unscaled gradients; use TrainingArguments(max_grad_norm=...) for "
                    "gradient clipping by norm, and leave it out of HuggingFaceCallback's algorithms"
                )
        super().__init__(algorithms, callbacks=callbacks, loggers=loggers, forward=forward)
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self._evaluating_average = False
        self._last_evaluated_step = -1

    # Training ---------------------------------------------------------------------------------

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        loader = kwargs["train_dataloader"]
        runner = self._build_runner(kwargs["model"], kwargs["optimizer"], loader, _resolver(args, state, loader))
        if state.global_step > 0:
            runner.load_state_dict(self._read_saved_state(args, state.global_step))
        runner.fit_start()
        owners = [a.name for a in runner.state.algorithms if Resource.FINAL_WEIGHTS in a.owned_resources(runner.state)]
        if args.load_best_model_at_end and owners:
            raise ValueError(
                f"load_best_model_at_end=True would replace the final weights {owners[0]} produces with the best "
                "checkpoint's; set load_best_model_at_end=False (eval_with_average=True evaluates the average during training)"
            )
        self.runner = runner

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._runner.batch_start()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._runner.batch_end()
        self._before_evaluation(control)

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._runner.epoch_end()
        self._before_evaluation(control)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._runner.fit_end()

    # Evaluation -------------------------------------------------------------------------------

    def _before_evaluation(self, control: TrainerControl) -> None:
        # The DefaultFlowCallback runs first and has already decided whether the Trainer evaluates now.
        if control.should_evaluate:
            self._evaluating_average = True
            self._runner.eval_start()

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.runner is None:
            return
        if self._evaluating_average:
            self._evaluating_average = False
        elif (
            state.global_step == self._last_evaluated_step
            and not self.runner.is_finished
            and any(getattr(a, "eval_with_average", False) for a in self.algorithms)
        ):
            warnings.warn(
                f"transformers.Trainer evaluated several eval datasets at step {state.global_step}; only the first "
                "was evaluated with the averaged weights (there is no hook before the others)",
                stacklevel=2,
            )
        self._last_evaluated_step = state.global_step
        self.runner.eval_end(kwargs.get("metrics"))

    # Checkpoints ------------------------------------------------------------------------------

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.runner is None or not args.should_save:
            return
        folder = Path(str(args.output_dir)) / f"checkpoint-{state.global_step}"
        payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "runner": self.runner.state_dict()}
        write_checkpoint(payload, folder / STATE_FILE_NAME)

    def _read_saved_state(self, args: TrainingArguments, global_step: int) -> dict[str, Any]:
        path = self.resume_from or Path(str(args.output_dir)) / f"checkpoint-{global_step}"
        if path.is_dir() or not path.suffix:
            path = path / STATE_FILE_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"transformers.Trainer resumed at step {global_step}, but {str(path)!r} does not exist, so the "
                "algorithms' state (averages, snapshot counts) would be lost; pass "
                "HuggingFaceCallback(..., resume_from='path/to/checkpoint-N') when the checkpoint is not under output_dir"
            )
        saved: dict[str, Any] = read_checkpoint(path)["runner"]
        if saved["timestamp"]["batch_count"] != global_step:
            raise ValueError(
                f"{str(path)!r} holds the algorithms' state at step {saved['timestamp']['batch_count']}, but "
                f"transformers.Trainer resumed at step {global_step}; resume_from must be the checkpoint being resumed"
            )
        return saved


def _resolver(args: TrainingArguments, state: TrainerState, loader: Any) -> BatchResolver:
    """Times resolved against what the Trainer knows: its max_steps, steps per epoch and global batch size."""
    try:
        batches_per_epoch: int | None = math.ceil(len(loader) / args.gradient_accumulation_steps)
    except TypeError:
        batches_per_epoch = None
    try:
        samples_per_epoch: int | None = len(loader.dataset)
    except (AttributeError, TypeError):
        samples_per_epoch = None
    return BatchResolver(
        max_duration=Time(state.max_steps, TimeUnit.BATCH),
        batches_per_epoch=batches_per_epoch,
        batch_size=args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        samples_per_epoch=samples_per_epoch if batches_per_epoch is not None else None,
        tokens_per_sample=infer_tokens_per_sample(loader),
        why_no_epoch_length=_NO_EPOCH_LENGTH,
    )
