"""The one schedule type: its grid against a reference written from the documented meaning."""

from __future__ import annotations

import numpy as np
import pytest

from composer_swa import BatchResolver, Schedule, Time, Timestamp


def _walk(schedule: Schedule, resolver: BatchResolver) -> list[tuple[int, bool]]:
    """Every (batch count, at_epoch_end) the resolved schedule fires at over the whole run."""
    resolved = schedule.resolve(resolver)
    per_epoch = resolver.batches_per_epoch or resolver.max_batches
    fired = []
    for count in range(1, resolver.max_batches + 1):
        stamp = Timestamp(batch=count, epoch=count // per_epoch)
        fired += [(count, False)] if resolved.fires(stamp, at_epoch_end=False) else []
        if count % per_epoch == 0:
            fired += [(count, True)] if resolved.fires(stamp, at_epoch_end=True) else []
    return fired


@pytest.mark.parametrize(("start", "step", "end"), [(0, 5, None), (3, 4, None), (7, 1, 12), (10, 3, 30), (0, 40, None)])
def test_batch_grid_counts_from_start(start: int, step: int, end: int | None) -> None:
    resolver = BatchResolver(max_duration=Time(40, "ba"))
    schedule = Schedule(f"{step}ba", start=f"{start}ba", end=None if end is None else f"{end}ba")
    last = 40 if end is None else end
    expected = np.arange(start, last + 1, step)
    assert _walk(schedule, resolver) == [(int(count), False) for count in expected if count >= 1]


@pytest.mark.parametrize(("start", "every"), [("0ba", 1), ("0ba", 2), ("5ba", 1), ("10ba", 2), ("11ba", 2), ("1ep", 3)])
def test_epoch_grid_starts_at_the_first_boundary_at_or_after_start(start: str, every: int) -> None:
    resolver = BatchResolver(max_duration=Time(8, "ep"), batches_per_epoch=5)
    start_batch = resolver.to_batches(Time.from_timestring(start))
    first_boundary = -(-start_batch // 5) * 5  # the reference: ceil to an epoch boundary
    expected = [(count, True) for count in range(first_boundary, 41, 5 * every) if count >= 1]
    assert _walk(Schedule(f"{every}ep", start=start), resolver) == expected


def test_a_duration_interval_resolves_exactly_and_an_epoch_schedule_needs_no_length_from_zero() -> None:
    resolver = BatchResolver(max_duration=Time(30, "ba"))
    assert [c for c, _ in _walk(Schedule("0.1dur"), resolver)] == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    unknown_length = Schedule("2ep").resolve(BatchResolver(max_duration=Time(30, "ba")))
    assert unknown_length.fires(Timestamp(batch=17, epoch=4), at_epoch_end=True)
    assert not unknown_length.fires(Timestamp(batch=17, epoch=3), at_epoch_end=True)


def test_count_through_matches_the_walk() -> None:
    resolver = BatchResolver(max_duration=Time(6, "ep"), batches_per_epoch=7)
    for schedule in (Schedule("3ba", start="5ba", end="30ba"), Schedule("2ep", start="8ba")):
        resolved = schedule.resolve(resolver)
        assert resolved.count_through(42, 7) == len(_walk(schedule, resolver))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": "0ba"}, "update_interval must be at least 1 of its unit"),
        ({"interval": "2dur"}, r"update_interval in 'dur' must lie in \(0, 1\]"),
        ({"interval": "1ba", "start": "1.5dur"}, r"the start of update_interval in 'dur' must lie in \[0, 1\]"),
        ({"interval": "often"}, "update_interval"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs, argument="update_interval")


def test_an_epoch_schedule_cannot_count_batches_without_the_epoch_length() -> None:
    resolved = Schedule("2ep").resolve(BatchResolver(max_duration=Time(30, "ba")))
    with pytest.raises(ValueError, match="the epoch's length is unknown"):
        resolved.count_through(30, None)
