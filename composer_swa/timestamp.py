"""Where a run stands: :class:`Timestamp`, its completed epochs, batches, samples and tokens."""

from __future__ import annotations

from composer_swa.time import Time, TimeUnit

__all__ = ["Timestamp"]


class Timestamp:
    """Where a run stands: completed epochs, batches, samples and tokens.

    The counters are plain ints updated in place on the hot path; the ``Time`` views are built on
    access. At ``Event.BATCH_END`` the batch that just finished is already counted.

    Example:
        >>> stamp = Timestamp()
        >>> stamp.advance_batch(samples=32, tokens=0)
        >>> stamp.batch, stamp.sample
        (Time(1, 'ba'), Time(32, 'sp'))
    """

    __slots__ = ("batch_count", "batch_in_epoch", "epoch_count", "sample_count", "token_count")

    def __init__(self, epoch: int = 0, batch: int = 0, sample: int = 0, token: int = 0, batch_in_epoch: int = 0) -> None:
        self.epoch_count = epoch
        self.batch_count = batch
        self.sample_count = sample
        self.token_count = token
        self.batch_in_epoch = batch_in_epoch

    @property
    def epoch(self) -> Time:
        return Time(self.epoch_count, TimeUnit.EPOCH)

    @property
    def batch(self) -> Time:
        return Time(self.batch_count, TimeUnit.BATCH)

    @property
    def sample(self) -> Time:
        return Time(self.sample_count, TimeUnit.SAMPLE)

    @property
    def token(self) -> Time:
        return Time(self.token_count, TimeUnit.TOKEN)

    def advance_batch(self, samples: int, tokens: int) -> None:
        self.batch_count += 1
        self.batch_in_epoch += 1
        self.sample_count += samples
        self.token_count += tokens

    def advance_epoch(self) -> None:
        self.epoch_count += 1
        self.batch_in_epoch = 0

    def state_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def load_state_dict(self, state: dict[str, int]) -> None:
        for name in self.__slots__:
            setattr(self, name, int(state[name]))

    def __repr__(self) -> str:
        return (
            f"Timestamp(epoch={self.epoch_count}, batch={self.batch_count}, sample={self.sample_count}, "
            f"token={self.token_count}, batch_in_epoch={self.batch_in_epoch})"
        )
