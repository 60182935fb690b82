"""Time at its limits: counts stay exact integers, and every failure is a ValueError or TypeError quoting the input."""

from __future__ import annotations

import pytest

from composer_swa.time import MAX_COUNT, Time, TimeUnit


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("9007199254740993ba", 9007199254740993),  # 2**53 + 1: a float would give ...992
        ("9_007_199_254_740_993tok", 9007199254740993),
        ("1e18sp", 10**18),
        ("1.5e3ba", 1500),
        ("12345678901234567e2tok", 1234567890123456700),
        (f"{MAX_COUNT}ba", MAX_COUNT),
    ],
)
def test_counts_are_parsed_exactly(text: str, value: int) -> None:
    time = Time.from_timestring(text)
    assert type(time.value) is int and time.value == value


def test_a_fraction_hidden_below_float_precision_is_still_a_fraction() -> None:
    with pytest.raises(TypeError, match=r"'9007199254740993\.5ba'.*whole units"):
        Time.from_timestring("9007199254740993.5ba")


@pytest.mark.parametrize(
    ("make", "error", "quoted"),
    [
        (lambda: Time(10**309, "ba"), ValueError, "1000000000"),
        (lambda: Time(10**309, "dur"), ValueError, "1000000000"),
        (lambda: Time(10**5000, "ep"), ValueError, "an integer of about 5,000 digits"),
        (lambda: Time.from_timestring("1e308ba") + Time.from_timestring("1e308ba"), ValueError, "'1e308ba'"),
        (lambda: Time(1e308, "dur") + Time(1e308, "dur"), ValueError, "1e+308dur + 1e+308dur"),
        (lambda: Time(2**62, "ba") + Time(2**62, "ba"), ValueError, "4611686018427387904ba + 4611686018427387904ba"),
        (lambda: Time(10**9, "ba") * "ab", TypeError, "1000000000ba by 'ab'"),  # MemoryError before: a 2 GB string
        (lambda: "ab" * Time(10**9, "ba"), TypeError, "by 'ab'"),
        (lambda: Time(3, "ba") * float("nan"), ValueError, "by nan"),
        (lambda: Time(0.5, "dur") * 10**400, ValueError, "0.5dur * 1000000000"),
        (lambda: Time.from_timestring("1e400ba"), ValueError, "'1e400ba'"),
        (lambda: Time.from_timestring("1e400dur"), ValueError, "'1e400dur'"),
        (lambda: Time.from_timestring("1e999999999tok"), ValueError, "'1e999999999tok'"),
        (lambda: Time.from_timestring("1" * 5000 + "ba"), ValueError, "'1111111111"),
        (lambda: Time(1, ["ba"]), ValueError, "['ba']"),
    ],
)
def test_failures_are_value_or_type_errors_quoting_the_input(make: object, error: type[Exception], quoted: str) -> None:
    with pytest.raises(error) as caught:
        make()  # type: ignore[operator]
    assert quoted in str(caught.value) and len(str(caught.value)) < 400


def test_exact_arithmetic_keeps_integers() -> None:
    big = Time(9007199254740993, "ba")
    assert (big * 1.0).value == 9007199254740993 and type((big * 1.0).value) is int
    assert (big + Time(1, "ba")).value == 9007199254740994
    assert (Time(4, "ba") * 2.5) == Time(10, "ba")
    assert Time(1e18, "ba").value == 10**18
    assert Time(MAX_COUNT, TimeUnit.TOKEN).value == MAX_COUNT
