from __future__ import annotations

import math

import pytest

from composer_swa import BatchResolver, Time, Timestamp, TimeUnit


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("0.7dur", 0.7, TimeUnit.DURATION),
        ("5ba", 5, TimeUnit.BATCH),
        ("5BA", 5, TimeUnit.BATCH),
        ("1e3ba", 1000, TimeUnit.BATCH),
        ("2_000tok", 2000, TimeUnit.TOKEN),
        ("3ep", 3, TimeUnit.EPOCH),
        ("128sp", 128, TimeUnit.SAMPLE),
        (" 1dur ", 1.0, TimeUnit.DURATION),
    ],
)
def test_parses_the_grammar(text: str, value: float, unit: TimeUnit) -> None:
    time = Time.from_timestring(text)
    assert time.value == value and time.unit is unit
    assert type(time.value) is (float if unit is TimeUnit.DURATION else int)


@pytest.mark.parametrize("text", ["0.7dr", "ba", "5", "five ba", "1.2.3ep", "", "5 b a"])
def test_bad_strings_name_the_string_and_the_units(text: str) -> None:
    with pytest.raises(ValueError) as error:
        Time.from_timestring(text)
    assert repr(text) in str(error.value) and "'dur'" in str(error.value)


def test_fraction_of_an_integer_unit_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"'1\.5ep'.*whole units"):
        Time.from_timestring("1.5ep")


def test_negative_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        Time.from_timestring("-1ep")
    with pytest.raises(ValueError, match=">= 0"):
        Time(-2, "ba")


def test_arithmetic_and_ordering_within_a_unit() -> None:
    assert Time(5, "ba") + Time(3, "ba") == Time(8, "ba")
    assert Time(5, "ba") - Time(3, "ba") == Time(2, "ba")
    assert Time(0.25, "dur") * 2 == Time(0.5, "dur")
    assert Time(1, "ep") < Time(2, "ep") <= Time(2, "ep")
    assert Time(1, "ep") != Time(1, "ba")


def test_mixing_units_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="units differ"):
        _ = Time(1, "ep") + Time(1, "ba")
    with pytest.raises(TypeError, match="units differ"):
        _ = Time(1, "ep") < Time(5, "ba")


def test_resolution_of_each_unit() -> None:
    # 100 samples in batches of 32: 4 batches an epoch, the last of 4 samples.
    clock = BatchResolver(
        max_duration=Time(3, "ep"), batches_per_epoch=4, batch_size=32, samples_per_epoch=100, tokens_per_sample=10
    )
    assert clock.max_batches == 12
    assert clock.to_batches(Time(2, "ep")) == 8
    assert clock.to_batches(Time(7, "ba")) == 7
    # Cumulative samples after b batches: 32, 64, 96, 100, 132, ...
    assert [clock.to_batches(Time(v, "sp")) for v in (1, 32, 33, 96, 97, 100, 101, 200, 201)] == [1, 1, 2, 3, 4, 4, 5, 8, 9]
    assert clock.to_batches(Time(1000, "tok")) == 4  # 100 samples
    assert clock.to_batches(Time(1010, "tok")) == 5  # 101 samples


def test_dur_is_the_exact_ceiling() -> None:
    clock = BatchResolver(max_duration=Time(100, "ba"))
    # 0.7 * 100 is 70.00000000000001 in floats; the resolver must not round that up to 71.
    assert clock.to_batches(Time(0.7, "dur")) == 70
    assert clock.to_batches(Time(0.701, "dur")) == 71
    assert clock.to_batches(Time(1.0, "dur")) == 100
    odd = BatchResolver(max_duration=Time(7, "ba"))
    assert odd.to_batches(Time(0.5, "dur")) == math.ceil(3.5)


def test_max_duration_in_samples_or_tokens() -> None:
    clock = BatchResolver(max_duration=Time(200, "sp"), batches_per_epoch=4, batch_size=32, samples_per_epoch=100)
    assert clock.max_batches == 8
    assert clock.to_batches(Time(0.5, "dur")) == 4


def test_bad_run_lengths() -> None:
    with pytest.raises(ValueError, match="max_duration cannot be in 'dur'"):
        BatchResolver(max_duration=Time(1, "dur"))
    with pytest.raises(ValueError, match="empty"):
        BatchResolver(max_duration=Time(1, "ep"), batches_per_epoch=0)
    with pytest.raises(ValueError, match="tokens per sample"):
        BatchResolver(max_duration=Time(5, "ba"), batch_size=4).to_batches(Time(10, "tok"))
    with pytest.raises(ValueError, match="no length"):
        BatchResolver(max_duration=Time(5, "ba")).to_batches(Time(1, "ep"))


def test_timestamp_counts_and_round_trips() -> None:
    stamp = Timestamp()
    for _ in range(3):
        stamp.advance_batch(samples=8, tokens=80)
    stamp.advance_epoch()
    stamp.advance_batch(samples=4, tokens=40)
    assert (stamp.epoch, stamp.batch, stamp.sample, stamp.token) == (
        Time(1, "ep"),
        Time(4, "ba"),
        Time(28, "sp"),
        Time(280, "tok"),
    )
    assert stamp.batch_in_epoch == 1
    restored = Timestamp()
    restored.load_state_dict(stamp.state_dict())
    assert restored.state_dict() == stamp.state_dict()


# Composer's rules for Time (composer/core/time.py), each with the value Composer returns.


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (lambda: Time(2, "ep") * 0.5, Time(1, "ep")),
        (lambda: Time(3, "ep") * 0.5, Time(1, "ep")),  # Composer: int(1.5), rounded down
        (lambda: Time(2, "ep") * Time(0.5, "dur"), Time(1, "ep")),
        (lambda: Time(0.5, "dur") * Time(10, "ba"), Time(5, "ba")),
        (lambda: Time(0.5, "dur") * Time(0.5, "dur"), Time(0.25, "dur")),
        (lambda: Time(4, "ep") / Time(2, "ep"), Time(2.0, "dur")),
        (lambda: Time(1, "ba") / Time(4, "ba"), Time(0.25, "dur")),
        (lambda: Time(4, "ep") / 2, Time(2, "ep")),
        (lambda: Time(7, "ba") / 2, Time(3, "ba")),  # Composer: int(3.5)
        (lambda: Time(0.5, "dur") / 2, Time(0.25, "dur")),
        (lambda: Time(7, "ba") % Time(3, "ba"), Time(1, "ba")),
        (lambda: Time(7, "ba") % 3, Time(1, "ba")),
        (lambda: Time(5, "ba") + 2, Time(7, "ba")),
        (lambda: 2 + Time(5, "ba"), Time(7, "ba")),
        (lambda: 9 - Time(5, "ba"), Time(4, "ba")),
        (lambda: Time(5, "ba") + "2ba", Time(7, "ba")),
        (lambda: Time(4, "ep") * "0.5dur", Time(2, "ep")),
        (lambda: +Time(5, "ba"), Time(5, "ba")),
    ],
)
def test_composers_arithmetic(expression: object, expected: Time) -> None:
    result = expression()  # type: ignore[operator]
    assert result == expected and type(result.value) is type(expected.value)


def test_composers_comparisons_take_numbers_and_strings_in_the_times_unit() -> None:
    assert Time(5, "ba") < 7 and Time(5, "ba") >= 5 and Time(5, "ba") == 5 and Time(5, "ba") != 6
    assert Time(5, "ba") == "5ba" and Time(5, "ba") < "1e3ba" and Time(0.5, "dur") > 0.25
    assert int(Time(5, "ba")) == 5 and float(Time(0.5, "dur")) == 0.5
    assert Time(1, "ep") != "1ba" and Time(1, "ep") != "not a time"  # == never raises (Composer raises across units)


@pytest.mark.parametrize(
    ("expression", "error", "message"),
    [
        (lambda: Time(1, "ep") + Time(1, "ba"), RuntimeError, "units differ"),  # Composer raises a RuntimeError
        (lambda: Time(1, "ep") % Time(1, "ba"), TypeError, "units differ"),  # and ours is a TypeError too
        (lambda: Time(1, "ep") / Time(1, "ba"), RuntimeError, "units differ"),
        (lambda: Time(2, "ep") * Time(3, "ba"), RuntimeError, "one of the two must be in 'dur'"),
        (lambda: Time(1, "ep") < "5ba", RuntimeError, "units differ"),
        (lambda: Time(4, "ba") / 0, ZeroDivisionError, "4ba by zero"),
        (lambda: Time(4, "ba") / Time(0, "ba"), ZeroDivisionError, "4ba by 0ba"),
        (lambda: Time(4, "ba") % 0, ZeroDivisionError, "4ba modulo 0ba"),
        (lambda: Time(1, "ba") - 2, ValueError, "negative"),  # Composer allows negative Times; they are refused here
        (lambda: -Time(1, "ba"), ValueError, "negative"),
        (lambda: Time(1, "ba") + 1.5, TypeError, "whole units"),
        (lambda: Time(1, "ba") + None, TypeError, "expected a Time, a time string or a number"),
    ],
)
def test_composers_refusals(expression: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        expression()  # type: ignore[operator]


def test_iter_is_refused_with_the_units_to_use() -> None:
    for make in (lambda: Time(3, "iter"), lambda: Time.from_timestring("3iter"), lambda: Time.from_iteration(3),
                 lambda: Time(3, TimeUnit.ITERATION), lambda: Timestamp().get("iter")):  # fmt: skip
        with pytest.raises(ValueError, match=r"'iter' counts Composer's training iterations.*'ep', 'ba', 'sp', 'tok' or 'dur'"):
            make()


def test_composers_constructors() -> None:
    assert (Time.from_epoch(2), Time.from_batch(3), Time.from_sample(4), Time.from_token(5), Time.from_duration(0.5)) == (
        Time(2, "ep"), Time(3, "ba"), Time(4, "sp"), Time(5, "tok"), Time(0.5, "dur"),
    )  # fmt: skip
    assert Time.from_input(Time(1, "ep")) == Time(1, "ep") and Time.from_input("2ba") == Time(2, "ba")
    assert Time.from_input(3, "sp") == Time(3, "sp") and Time(7, "tok").to_timestring() == "7tok"
    with pytest.raises(ValueError, match="needs a unit"):
        Time.from_input(3)


def test_timestamp_get_and_comparisons() -> None:
    stamp = Timestamp(epoch=1, batch=12, sample=96, token=960)
    assert [stamp.get(unit) for unit in ("ep", "BA", TimeUnit.SAMPLE, "tok")] == [
        Time(1, "ep"), Time(12, "ba"), Time(96, "sp"), Time(960, "tok"),
    ]  # fmt: skip
    assert stamp >= Time(1, "ep") and stamp < Time(2, "ep") and stamp <= "12ba" and stamp > "95sp" and stamp == "960tok"
    assert Time(12, "ba") == stamp and Time(13, "ba") > stamp  # Python asks the Timestamp
    assert stamp == Timestamp(epoch=1, batch=12, sample=96, token=960) and stamp != Timestamp()
    with pytest.raises(ValueError, match="'dur' needs the run's length"):
        stamp.get("dur")
    with pytest.raises(TypeError):
        _ = stamp < 5  # a bare number has no unit to compare in
