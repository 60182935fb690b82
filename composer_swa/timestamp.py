"""Where a run stands: :class:`Timestamp`, its completed epochs, batches, samples and tokens."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from composer_swa.time import Time, TimeUnit
from composer_swa.time_grammar import parse_unit

__all__ = ["Timestamp"]


class Timestamp:
    """Where a run stands: completed epochs, batches, samples and tokens.

    The counters are plain ints updated in place on the hot path; the ``Time`` views are built on
    access. At ``Event.BATCH_END`` the batch that just finished is already counted.

    As in Composer, a Timestamp compares with a ``Time`` or a time string in that Time's unit
    (``state.timestamp >= Time(5, "ep")``, ``state.timestamp < "100ba"``), and two Timestamps are
    equal when every counter is. A ``dur`` needs the run's length, which a Timestamp does not know:
    resolve it first (``state.to_batches("0.5dur")``).

    Example:
        >>> stamp = Timestamp()
        >>> stamp.advance_batch(samples=32, tokens=0)
        >>> stamp.batch, stamp.sample, stamp.get("sp")
        (Time(1, 'ba'), Time(32, 'sp'), Time(32, 'sp'))
        >>> stamp >= Time(1, "ba"), stamp < "1ep"
        (True, True)
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

    def get(self, unit: TimeUnit | str) -> Time:
        """The run's position in ``unit``: ``ep``, ``ba``, ``sp`` or ``tok``.

        Raises:
            ValueError: For ``dur`` (it needs the run's length) or ``iter``, or an unknown unit.
        """
        parsed = parse_unit(unit)
        if parsed is TimeUnit.DURATION:
            raise ValueError(
                "a Timestamp counts 'ep', 'ba', 'sp' and 'tok'; a 'dur' needs the run's length: "
                "compare with state.to_batches(time) against timestamp.batch_count instead"
            )
        return Time(getattr(self, _COUNTERS[parsed]), parsed)

    def _compare(self, other: object, compare: Callable[[Any, Any], bool]) -> bool:
        if isinstance(other, str):
            other = Time.from_timestring(other)
        if not isinstance(other, Time):
            return NotImplemented
        return compare(self.get(other.unit), other)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Timestamp):
            return self.state_dict() == other.state_dict()
        return self._compare(other, operator.eq)

    __hash__ = None  # type: ignore[assignment]  # mutable: counters change in place

    def __lt__(self, other: object) -> bool:
        return self._compare(other, operator.lt)

    def __le__(self, other: object) -> bool:
        return self._compare(other, operator.le)

    def __gt__(self, other: object) -> bool:
        return self._compare(other, operator.gt)

    def __ge__(self, other: object) -> bool:
        return self._compare(other, operator.ge)

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


_COUNTERS = {
    TimeUnit.EPOCH: "epoch_count",
    TimeUnit.BATCH: "batch_count",
    TimeUnit.SAMPLE: "sample_count",
    TimeUnit.TOKEN: "token_count",
}
