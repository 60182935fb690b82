"""``fit()``'s arguments, as Composer's: new data, a longer run (``duration``), the clock back at zero
(``reset_time``), other evaluation settings or microbatches, each taking effect before the loop starts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from composer_swa.distributed.sampling import shard_dataloader
from composer_swa.model_calls import statistics_forward
from composer_swa.time import Time, TimeUnit, as_time
from composer_swa.timestamp import Timestamp
from composer_swa.trainer.arguments import check_loader, microbatching, subset_count
from composer_swa.trainer.checks import check_nonempty

if TYPE_CHECKING:
    from composer_swa.trainer.trainer import Trainer

__all__: list[str] = []


def shard(trainer: Trainer, loader: Iterable[Any], argument: str) -> Iterable[Any]:
    """``loader`` with this process's share of the data (itself in a single process), checked non-empty."""
    info = trainer.distributed
    loader = shard_dataloader(loader, argument, info.rank, info.world_size, trainer._seed)
    check_nonempty(loader, argument)
    return loader


def set_microbatching(trainer: Trainer, device_train_microbatch_size: int | str | None, grad_accum: int) -> None:
    """How each batch splits into microbatches, for training and for statistics passes alike."""
    state = trainer.state
    state.grad_accum, state.device_train_microbatch_size = microbatching(device_train_microbatch_size, grad_accum)
    state.run_forward = statistics_forward(
        state.model, trainer.device, trainer._autocast, state.grad_accum, state.device_train_microbatch_size
    )


def elapsed(timestamp: Timestamp, unit: TimeUnit) -> Time:
    """The time trained so far, in ``unit`` (Composer's ``Timestamp.get``)."""
    counts = {
        TimeUnit.EPOCH: timestamp.epoch_count,
        TimeUnit.BATCH: timestamp.batch_count,
        TimeUnit.SAMPLE: timestamp.sample_count,
        TimeUnit.TOKEN: timestamp.token_count,
    }
    if unit not in counts:
        raise ValueError(f"duration must be in 'ep', 'ba', 'sp' or 'tok' (an amount to train), got unit {unit.value!r}")
    return Time(counts[unit], unit)


def prepare_fit(
    trainer: Trainer,
    train_dataloader: Iterable[Any] | None,
    train_subset_num_batches: int | None,
    duration: Time | str | int | None,
    reset_time: bool,
    eval_dataloader: Iterable[Any] | None,
    eval_subset_num_batches: int | None,
    eval_interval: Time | str | int | None,
    device_train_microbatch_size: int | str | None,
) -> None:
    """Applies ``fit()``'s arguments to the Trainer (see :meth:`Trainer.fit`); checks all of them first."""
    state = trainer.state
    check_loader(train_dataloader, "train_dataloader")
    check_loader(eval_dataloader, "eval_dataloader")
    extra = None if duration is None else as_time(duration, "duration", TimeUnit.EPOCH)
    if extra is not None:
        elapsed(state.timestamp, extra.unit)  # refuses 'dur' before anything changes
    if trainer._fitted and extra is None and not reset_time and state.timestamp.batch_count >= state.max_batches:
        raise ValueError(
            f"fit() already trained this run to {state.max_duration}; pass duration=... to train for longer, "
            "or reset_time=True to train again from time zero"
        )
    if train_dataloader is not None:
        state.train_dataloader = shard(trainer, train_dataloader, "train_dataloader")
    if train_subset_num_batches is not None:
        state.train_subset_num_batches = subset_count(train_subset_num_batches, "train_subset_num_batches")
    if reset_time:
        state.timestamp.load_state_dict(Timestamp().state_dict())
        trainer._last_eval_batch = -1
        trainer.checkpointer.last_saved_batch = None
    if extra is not None:
        state.max_duration = extra + elapsed(state.timestamp, extra.unit)
    if eval_dataloader is not None:
        state.eval_dataloader = shard(trainer, eval_dataloader, "eval_dataloader")
    if eval_subset_num_batches is not None:
        trainer._eval_subset = subset_count(eval_subset_num_batches, "eval_subset_num_batches")
    if eval_interval is not None:
        trainer.intervals.set_eval_interval(eval_interval)
    if device_train_microbatch_size is not None:
        set_microbatching(trainer, device_train_microbatch_size, grad_accum=1)
    if not state.ready_to_train:
        _ = state.train_dataloader, state.max_duration  # names what is missing
    if train_dataloader is not None or train_subset_num_batches is not None or reset_time:
        trainer._epochs.restart()
    _ = state.max_batches  # a bad duration fails here, before any work
