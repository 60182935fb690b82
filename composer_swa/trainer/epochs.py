"""The Trainer's epochs of data: each epoch's batch iterator, and the RNG state at its start, which a
checkpoint keeps so that a run resumed mid-epoch sees the rest of the same epoch in the same order."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from composer_swa.checkpoint import capture_rng, restore_rng, skip_consumed_batches
from composer_swa.distributed.sampling import set_sampler_epoch

if TYPE_CHECKING:
    from composer_swa.events.loop import Loop

__all__ = ["Epochs"]


class Epochs:
    """Hands out epochs of ``state.train_dataloader`` (read at each epoch), firing EPOCH_START as each begins.

    Args:
        loop: The run's loop.

    Example:
        >>> import torch
        >>> from composer_swa import State
        >>> from composer_swa.events.loop import Loop
        >>> from composer_swa.loggers import Logger
        >>> data = [(torch.zeros(1, 2), torch.zeros(1))] * 3
        >>> loop = Loop(State(model=torch.nn.Linear(2, 1), max_duration="1ep", train_dataloader=data), Logger())
        >>> len(list(Epochs(loop).next_epoch()))
        3
    """

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        #: The RNG states the epoch's iterator was created with (the loader's shuffle draws from them).
        self.rng_at_start: dict[str, Any] = {}
        self._rest: Iterator[Any] | None = None  # a resumed epoch, handed out by the next next_epoch()
        self._paused: dict[str, Any] | None = None  # RNG states of a paused epoch, resumed by the next next_epoch()

    def pause(self) -> None:
        """fit() ended mid-epoch: the next fit() goes on with the rest of this epoch's batches, in order.

        Nothing live is kept (a loader's worker processes would hold the save folder's lock): the RNG
        states of now and of the epoch's start are, and the rest of the epoch is drawn again from
        them as a checkpoint's resume does.
        """
        state = self.loop.state
        if state.timestamp.batch_in_epoch == 0 or self.loop.epoch_is_full:
            return
        self._paused = {"epoch_rng": self.rng_at_start, "rng": capture_rng(state.train_dataloader)}

    def restart(self) -> None:
        """The data or the time changed between fit() calls: a fresh epoch, or the rest of one read anew.

        Mid-epoch on a new loader, its first ``batch_in_epoch`` batches are drawn and dropped (Composer
        spins its loader the same way), so the epoch keeps its length.
        """
        state = self.loop.state
        self._rest = self._paused = None
        if state.timestamp.batch_in_epoch > 0:
            self._rest = self._cut(iter(state.train_dataloader), skip=state.timestamp.batch_in_epoch)

    def _cut(self, batches: Iterator[Any], skip: int = 0) -> Iterator[Any]:
        """The batches of an epoch cut to ``train_subset_num_batches``, without the first ``skip``."""
        subset = self.loop.state.train_subset_num_batches
        return itertools.islice(batches, skip, subset)

    def resume(self, checkpoint: dict[str, Any]) -> None:
        """Continues from ``checkpoint``: the rest of its epoch comes next, or at a boundary its RNG states hold."""
        loader, timestamp = self.loop.state.train_dataloader, self.loop.state.timestamp
        if timestamp.batch_in_epoch == 0:
            restore_rng(checkpoint["rng"], loader)
            return
        set_sampler_epoch(loader, int(timestamp.epoch_count))
        self.rng_at_start = checkpoint["epoch_rng"]  # EPOCH_START already ran before the checkpoint
        subset = self.loop.state.train_subset_num_batches
        rest = skip_consumed_batches(loader, checkpoint, timestamp.batch_in_epoch)
        self._rest = rest if subset is None else itertools.islice(rest, subset - timestamp.batch_in_epoch)

    def next_epoch(self) -> Iterator[Any]:
        """The next epoch's batches: the rest of a resumed one, or a new one (after EPOCH_START)."""
        if self._paused is not None:
            paused, self._paused = self._paused, None
            self.resume(paused)
        if self._rest is not None:
            rest, self._rest = self._rest, None
            return rest
        loader = self.loop.state.train_dataloader
        set_sampler_epoch(loader, int(self.loop.state.timestamp.epoch_count))
        self.loop.epoch_start()
        # A shuffling loader draws its order from these generators when its iterator is created.
        self.rng_at_start = capture_rng(loader)
        return self._cut(iter(loader))
