"""The resolution of any :class:`~composer_swa.time.Time` to a count of completed batches, for one run.

Times are resolved once, when the run's length is known (at ``Event.FIT_START``); everything on the
hot path compares plain integers.

Example:
    >>> clock = BatchResolver(max_duration=Time(10, "ep"), batches_per_epoch=100)
    >>> clock.to_batches(Time.from_timestring("0.7dur"))
    700
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

from composer_swa.time import Time, TimeUnit

__all__ = ["BatchResolver"]


@dataclass(frozen=True)
class BatchResolver:
    """Turns any ``Time`` into a count of completed batches for one run.

    Args:
        max_duration: The run's length in ``ep``, ``ba``, ``sp`` or ``tok`` (never ``dur``).
        batches_per_epoch: Batches in one epoch; ``None`` for loaders without a length.
        batch_size: Samples in a full batch; needed for ``sp`` and ``tok``.
        samples_per_epoch: Samples seen in one epoch (a last partial batch counts by its size).
            Defaults to ``batches_per_epoch * batch_size``.
        tokens_per_sample: Tokens in one sample; needed for ``tok``.
        why_no_epoch_length: Why ``batches_per_epoch`` is unknown, for the error an ``ep`` time raises
            (a framework adapter names what the framework hides).

    Resolution rules: ``ep`` is epochs times batches per epoch; ``sp`` and ``tok`` are the first
    batch count whose cumulative samples (tokens) reach the value; ``dur`` is the first batch count
    at or past that fraction of the run (ceiling, computed exactly).

    Example:
        >>> clock = BatchResolver(max_duration=Time(2, "ep"), batches_per_epoch=4, batch_size=32, samples_per_epoch=100)
        >>> clock.max_batches, clock.to_batches(Time(100, "sp")), clock.to_batches(Time(101, "sp"))
        (8, 4, 5)
    """

    max_duration: Time
    batches_per_epoch: int | None = None
    batch_size: int | None = None
    samples_per_epoch: int | None = None
    tokens_per_sample: float | None = None
    why_no_epoch_length: str = "the train dataloader has no length"

    def __post_init__(self) -> None:
        if self.max_duration.unit is TimeUnit.DURATION:
            raise ValueError(
                f"max_duration cannot be in 'dur' (a fraction of itself), got {self.max_duration}; use 'ep', 'ba', 'sp' or 'tok'"
            )
        if self.batches_per_epoch is not None and self.batches_per_epoch <= 0:
            raise ValueError(
                f"the train dataloader is empty (batches_per_epoch={self.batches_per_epoch!r}); it must yield at least one batch"
            )
        if self.max_batches <= 0:
            raise ValueError(
                f"max_duration={str(self.max_duration)!r} resolves to no batches; the run must train at least one batch"
            )

    @cached_property
    def max_batches(self) -> int:
        return self._integral_to_batches(self.max_duration)

    def to_batches(self, time: Time) -> int:
        """Returns the completed-batch count at which ``time`` is reached."""
        if time.unit is TimeUnit.DURATION:
            return math.ceil(Fraction(str(time.value)) * self.max_batches)
        return self._integral_to_batches(time)

    def _integral_to_batches(self, time: Time) -> int:
        value = int(time.value)
        if time.unit is TimeUnit.BATCH:
            return value
        if time.unit is TimeUnit.EPOCH:
            return value * self._require(self.batches_per_epoch, time, self.why_no_epoch_length)
        if time.unit is TimeUnit.TOKEN:
            tokens_per_sample = self._require(self.tokens_per_sample, time, "the tokens per sample are unknown")
            return self._samples_to_batches(math.ceil(Fraction(value) / Fraction(str(tokens_per_sample))), time)
        return self._samples_to_batches(value, time)

    def _samples_to_batches(self, samples: int, time: Time) -> int:
        batch_size = self._require(self.batch_size, time, "the batch size is unknown")
        if samples == 0:
            return 0
        if self.batches_per_epoch is None:
            return math.ceil(samples / batch_size)
        per_epoch = self.samples_per_epoch or self.batches_per_epoch * batch_size
        full_epochs, remainder = divmod(samples - 1, per_epoch)
        return full_epochs * self.batches_per_epoch + math.ceil((remainder + 1) / batch_size)

    @staticmethod
    def _require(quantity: Any, time: Time, why: str) -> Any:
        if quantity is None:
            raise ValueError(f"cannot resolve {time} to batches: {why}; express it in 'ba' or 'dur' instead")
        return quantity
