"""When a run saves checkpoints, what goes in them, and how a run picks up exactly where one stopped."""

from __future__ import annotations

import platform
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from composer_swa.checkpoint.files import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    list_checkpoints,
    read_checkpoint,
    remove_checkpoint,
    write_checkpoint,
)
from composer_swa.checkpoint.finite import check_finite, named_tensors
from composer_swa.checkpoint.options import CheckpointOptions
from composer_swa.checkpoint.rng import capture_rng, restore_rng
from composer_swa.checkpoint.weights import load_model_weights
from composer_swa.distributed.process_group import all_gather_objects, distributed_info
from composer_swa.schedule import ResolvedSchedule, Schedule

if TYPE_CHECKING:
    from composer_swa.events import Engine
    from composer_swa.state import State

__all__ = ["Checkpointer", "skip_consumed_batches"]


class Checkpointer:
    """Saves checkpoints every ``save_interval`` into ``save_folder``, prunes old ones, and resumes.

    A checkpoint holds :meth:`State.state_dict` (model, optimizers, schedulers, timestamp, every
    algorithm's and callback's state), the GradScaler, the RNG states (Python, NumPy, torch CPU and
    CUDA, the loader's generators) now and at the start of the epoch, and the algorithm trace.

    Under torch.distributed every process calls :meth:`save` and :meth:`restore`: the RNG states of
    all processes are gathered into process 0's file, process 0 alone writes, and on resume each
    process reads the file (so ``save_folder`` must be on storage every node sees) and takes its own
    RNG states back.

    Args:
        options: What to save, when, and what to start from; the default saves and loads nothing.

    Example:
        >>> Checkpointer(CheckpointOptions.from_arguments(save_folder="checkpoints", save_interval="50ba")).saving
        True
    """

    def __init__(self, options: CheckpointOptions | None = None) -> None:
        self.options = options if options is not None else CheckpointOptions()
        self.last_saved_batch: int | None = None
        #: The checkpoint the last successful :meth:`save` wrote.
        self.last_saved_path: Path | None = None
        #: What the last :meth:`restore` loaded and skipped, for the run's log.
        self.notes: list[str] = []
        self._restored = False
        self._schedule: ResolvedSchedule | None = None

    @property
    def saving(self) -> bool:
        return self.options.save_folder is not None

    # Resuming ---------------------------------------------------------------------------------

    def restore(self, state: State, engine: Engine, scaler: Any) -> dict[str, Any] | None:
        """Loads what this run starts from; returns the checkpoint when the run resumes mid-training.

        What was loaded, and every checkpoint skipped on the way, is described in :attr:`notes`.
        Only the first call loads: a second ``fit()`` goes on from where the first ended.
        """
        self.notes = []
        if self._restored:
            self._clear_the_way(state)
            return None
        self._restored = True
        found = self._newest_valid() if self.options.autoresume else None
        existing = self._existing()
        if found is None and existing and self.options.autoresume and not self.options.save_overwrite:
            raise CheckpointError(
                f"autoresume found {len(existing)} checkpoint(s) in {str(self.options.save_folder)!r} and none is valid "
                "(see the warnings above); move them away to start afresh, or pass load_path= an intact copy"
            )
        if found is None and existing and not self.options.save_overwrite:
            raise CheckpointError(
                f"save_folder {str(self.options.save_folder)!r} already holds checkpoints ({existing[-1].name}, ...) "
                "of another run; pass autoresume=True to continue it, save_overwrite=True to replace them, "
                "or use an empty folder"
            )
        if found is None and existing:
            self._remove_previous_run(existing)
        if found is None and self.options.load_path is not None:
            if self.options.load_weights_only:
                stripped = load_model_weights(state.model, self.options.load_path)
                self.notes += [stripped] if stripped else []
                self.notes.append(f"loaded model weights from {self.options.load_path}")
                return None
            found = (self.options.load_path, read_checkpoint(self.options.load_path))
        if found is None:
            return None
        path, payload = found
        _check_same_epochs(path, payload, state)
        self._take_own_rng(path, payload)
        state.load_state_dict(payload["state"])
        if scaler is not None and payload["grad_scaler"] is not None:
            scaler.load_state_dict(payload["grad_scaler"])
        engine.trace = Counter({(name, event): count for name, event, count in payload["trace"]})
        self.last_saved_batch = state.timestamp.batch_count
        self.notes.append(f"resumed from {path} at {state.timestamp}")
        return payload

    def _take_own_rng(self, path: Path, payload: dict[str, Any]) -> None:
        """Puts this process's saved RNG states where the loop reads them (``rng``, ``epoch_rng``)."""
        info = distributed_info()
        per_rank = payload.get("rank_rng") or [{"rng": payload["rng"], "epoch_rng": payload["epoch_rng"]}]
        if len(per_rank) == info.world_size:
            payload.update(per_rank[info.rank])
            return
        message = (
            f"{path.name} was saved by {len(per_rank)} process(es) and this run has {info.world_size}: "
            "training continues from it, but random draws (dropout, augmentation) differ from the uninterrupted run"
        )
        warnings.warn(message, stacklevel=3)
        self.notes.append(message)

    def _existing(self) -> list[Path]:
        """This run's checkpoints (named by ``save_filename``) in ``save_folder``, oldest first."""
        folder = self.options.save_folder
        return list_checkpoints(folder, self.options.naming) if folder is not None else []

    def _remove_previous_run(self, existing: list[Path]) -> None:
        """``save_overwrite=True`` and nothing to resume: the folder's checkpoints make way for this run's.

        They go now rather than one by one as names collide, so that the ``latest`` link, the newest N
        kept and a later autoresume all see this run's checkpoints only.
        """
        assert self.options.save_folder is not None
        if distributed_info().is_rank_zero:
            for path in existing:
                remove_checkpoint(path)
            self.options.naming.remove_latest(self.options.save_folder)
        self.notes.append(
            f"save_overwrite=True: removed {len(existing)} checkpoint(s) of an earlier run from {self.options.save_folder}"
        )

    def _clear_the_way(self, state: State) -> None:
        """A later fit(): checkpoints past the current batch (after ``reset_time=True``) would be overwritten."""
        later = [
            path for path in self._existing() if (self.options.naming.batch_of(path.name) or 0) > state.timestamp.batch_count
        ]
        if later and not self.options.save_overwrite:
            raise CheckpointError(
                f"{later[0]} may be overwritten by a checkpoint of this fit(), which starts at batch "
                f"{state.timestamp.batch_count}; pass save_overwrite=True to replace it, or another save_folder"
            )
        if later:
            self._remove_previous_run(later)

    def _newest_valid(self) -> tuple[Path, dict[str, Any]] | None:
        assert self.options.save_folder is not None
        for path in reversed(self._existing()):
            try:
                return path, read_checkpoint(path)
            except CheckpointError as error:
                message = f"skipping checkpoint {path.name}: {error}; trying the one before it"
                warnings.warn(message, stacklevel=3)
                self.notes.append(message)
        return None

    # Saving -----------------------------------------------------------------------------------

    def resolve(self, state: State) -> None:
        """Resolves ``save_interval`` against the run's length (at FIT_START)."""
        interval = self.options.save_interval
        self._schedule = None if interval is None else Schedule(interval, argument="save_interval").resolve(state.resolver)

    def is_due(self, state: State, epoch_ended: bool) -> bool:
        """Whether a periodic checkpoint falls at this batch boundary (an epoch's end is a batch's end too)."""
        timestamp = state.timestamp
        if not self.saving or self.last_saved_batch == timestamp.batch_count or self._schedule is None:
            return False
        return self._schedule.fires(timestamp, at_epoch_end=epoch_ended and self._schedule.at_epoch_end)

    @property
    def saves_at_end(self) -> bool:
        """Whether fit() ends with a checkpoint (not with ``save_interval=0``, as in Composer)."""
        return self.saving and self.options.save_interval is not None

    def save(self, state: State, engine: Engine, scaler: Any, epoch_rng: dict[str, Any]) -> Path:
        """Writes a checkpoint atomically, then prunes the oldest beyond ``save_num_checkpoints_to_keep``.

        Every process calls it; process 0 writes. A state holding a NaN or an infinity (the model, the
        optimizers, an average) is refused with :class:`~composer_swa.checkpoint.finite.NonFiniteError`
        before anything is written or pruned, so the newest checkpoint is always a finite one. A full
        disk raises :class:`~composer_swa.atomic_files.DiskFullError` and prunes nothing.
        """
        assert self.options.save_folder is not None
        timestamp = state.timestamp
        name = self.options.naming.name(
            epoch=timestamp.epoch_count, batch=timestamp.batch_count, batch_in_epoch=timestamp.batch_in_epoch,
            sample=timestamp.sample_count, token=timestamp.token_count,
        )  # fmt: skip
        path = self.options.save_folder / name
        rng = capture_rng(state.train_dataloader)
        per_rank = all_gather_objects({"rng": rng, "epoch_rng": epoch_rng})
        model_state = state.state_dict()  # a collective under FSDP2: every process gathers its shards
        check_finite(named_tensors(model_state), f"write checkpoint {path.name}", state.device)
        self.last_saved_batch = timestamp.batch_count
        if not distributed_info().is_rank_zero:
            self.last_saved_path = path
            return path
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "state": model_state,
            "grad_scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng,
            "epoch_rng": epoch_rng,
            "rank_rng": per_rank if len(per_rank) > 1 else None,
            "trace": [[name, event, count] for (name, event), count in sorted(engine.trace.items())],
            "batches_per_epoch": state.batches_per_epoch,
            "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
        }
        write_checkpoint(payload, path)
        self.last_saved_path = path
        self.options.naming.point_latest_at(self.options.save_folder, path)
        if self.options.save_num_checkpoints_to_keep > 0:
            for old in self._existing()[: -self.options.save_num_checkpoints_to_keep]:
                remove_checkpoint(old)
        return path


def skip_consumed_batches(loader: Iterable[Any], checkpoint: dict[str, Any], consumed: int) -> Iterator[Any]:
    """The rest of a checkpoint's epoch: the same batches in the same order, minus the ``consumed`` ones.

    The generators go back to the epoch's start before the iterator is created (a shuffling loader
    draws its order then), the consumed batches are drawn and dropped without touching the model,
    and the generators are set to the checkpoint's moment.
    """
    restore_rng(checkpoint["epoch_rng"], loader)
    iterator = iter(loader)
    for index in range(consumed):
        try:
            next(iterator)
        except StopIteration:
            raise CheckpointError(
                f"the checkpoint was saved after batch {consumed} of its epoch, but train_dataloader now "
                f"ends after {index}; resume with the data the run was saved with"
            ) from None
    restore_rng(checkpoint["rng"], loader)
    return iterator


def _check_same_epochs(path: Path, payload: dict[str, Any], state: State) -> None:
    saved, now = payload["batches_per_epoch"], state.batches_per_epoch
    if saved is not None and now is not None and saved != now:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written with {saved} batches per epoch, this run has {now}; "
            "resuming needs the same data and batch size"
        )
