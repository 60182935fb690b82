"""How the Trainer's loop saves at batch boundaries and how fit() ends: preemption, full disks, the export.

Preemption (SIGTERM/SIGINT while ``save_folder`` is set) is watched from the start of fit() to the
end of the export. At a batch boundary a signal means "save, then stop". After the last batch it
means: the final checkpoint is written first in any case; then, if the signal arrived before the
export began, the evaluation and the export are skipped (the resumed run redoes them from the final
checkpoint); if it arrived during the export, the export completes. Either way fit() then raises
:class:`~composer_swa.checkpoint.TrainingPreempted`, exit status 0.

A checkpoint that cannot be written (a full disk) is a warning, not the end of the run: the previous
checkpoint is intact. After the last batch that means the export is still attempted.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from composer_swa.checkpoint import TrainingPreempted, export_weights
from composer_swa.distributed.process_group import any_rank

if TYPE_CHECKING:
    from composer_swa.trainer.trainer import Trainer

__all__: list[str] = []


def _signalled(trainer: Trainer) -> str | None:
    """The signal noted on any process (every process gets the same answer), or ``None``."""
    signal_name = trainer._preemption.signal_name
    if not (trainer.checkpointer.saving and any_rank(signal_name is not None, trainer.device)):
        return None
    return signal_name or "a signal to another process"


def _preempted(trainer: Trainer, signal_name: str, path: Path) -> TrainingPreempted:
    preempted = TrainingPreempted(signal_name, path)
    trainer.logger.log_message(str(preempted), step=trainer.state.timestamp.batch_count)
    return preempted


def _save_or_warn(trainer: Trainer) -> None:
    """Writes a checkpoint; one that cannot be written (``OSError``: a full disk) is reported and skipped."""
    try:
        trainer._save_checkpoint()
    except OSError as error:  # a full disk should not end a long run; the last checkpoint is intact
        message = (
            f"could not write a checkpoint at {trainer.state.timestamp}: {error}; the previous one is intact, training goes on"
        )
        warnings.warn(message, stacklevel=3)
        trainer.logger.log_message(message, step=trainer.state.timestamp.batch_count)


def save_at_boundary(trainer: Trainer, epoch_ended: bool) -> None:
    """Between batches: saves and stops after a signal; saves when a periodic checkpoint is due."""
    # Every process must save at the same batch, whichever of them the signal reached first.
    if (signal_name := _signalled(trainer)) is not None:
        raise _preempted(trainer, signal_name, trainer._save_checkpoint())
    if trainer.checkpointer.is_due(trainer.state, epoch_ended):
        _save_or_warn(trainer)


def finish_fit(trainer: Trainer) -> None:
    """After the last batch: the final checkpoint, FIT_END, the last evaluation and the export of ``final/``."""
    state, checkpointer = trainer.state, trainer.checkpointer
    folder = checkpointer.options.save_folder
    trainer._guard.check_run()
    if checkpointer.saves_at_end and checkpointer.last_saved_batch != state.timestamp.batch_count:
        _save_or_warn(trainer)  # before FIT_END: resuming it replays FIT_END
    trainer.loop.fit_end()
    if trace := trainer.engine.trace_summary():
        trainer.logger.log_message("algorithm trace, events each acted on:\n" + trace, step=state.timestamp.batch_count)
    if (signal_name := _signalled(trainer)) is not None:  # the export is left to the resumed run
        raise _preempted(trainer, signal_name, checkpointer.last_saved_path or Path(str(folder)))
    evaluates = state.eval_dataloader is not None and trainer.intervals.eval_interval is not None  # 0: never
    if evaluates and trainer._last_eval_batch != state.timestamp.batch_count:
        trainer._evaluate()
    if folder is not None:
        export_weights(state, folder / "final")
    if (signal_name := _signalled(trainer)) is not None:  # it arrived during the export, which completed
        raise _preempted(trainer, signal_name, checkpointer.last_saved_path or Path(str(folder)) / "final")
