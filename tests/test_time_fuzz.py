"""Fuzzing the Time parser and arithmetic: a Time, or a ValueError/TypeError that quotes the input.

A few hundred examples by default; ``COMPOSER_SWA_FUZZ_EXAMPLES=5000`` runs a larger search.
"""

from __future__ import annotations

import math
import os
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer_swa.time import MAX_COUNT, Time, TimeUnit

EXAMPLES = int(os.environ.get("COMPOSER_SWA_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
UNITS = [unit.value for unit in TimeUnit]

numbers = st.one_of(
    st.from_regex(r"[-+]?[0-9_]{0,25}(\.[0-9_]{0,25})?(e[-+]?[0-9_]{1,12})?", fullmatch=True),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["9007199254740993", "1e308", "1e400", "1_000", "1__0", "_1", ".", "1.", ".5", "0e999999999"]),
)
units = st.one_of(st.sampled_from(UNITS), st.sampled_from([u.upper() for u in UNITS]), st.text(max_size=4))
timestrings = st.one_of(
    st.builds(lambda space1, number, space2, unit: space1 + number + space2 + unit, st.sampled_from(["", " "]), numbers,
              st.sampled_from(["", " ", "\t"]), units),
    st.text(max_size=30),
)  # fmt: skip
values: st.SearchStrategy[Any] = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=10**300, max_value=10**320),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


def quoted_in(text: str, message: str) -> bool:
    """The message quotes the input: whole, or its start when it is long."""
    shown = repr(text)
    return shown in message or (len(shown) > 60 and shown[:40] in message)


def exact(number_text: str) -> Fraction | Decimal:
    """An independent reading of the number, exact: a Fraction, or a Decimal when the exponent is huge
    (``0e999999999`` is zero, but Fraction would first build 10**999999999)."""
    text = number_text.strip().replace("_", "")
    mantissa, _, exponent = text.partition("e")
    if exponent and abs(int(exponent)) > 50:
        return Decimal(text)
    return Fraction(mantissa) * Fraction(10) ** int(exponent or 0)


@FUZZ
@given(timestrings)
def test_a_time_string_gives_an_exact_time_or_a_clean_error(text: str) -> None:
    try:
        time = Time.from_timestring(text)
    except (ValueError, TypeError) as error:
        assert quoted_in(text, str(error)), (text, str(error))
        return
    assert Time.from_timestring(str(time)) == time  # str() reads back
    number = text.strip().lower().removesuffix(time.unit.value).strip()
    if time.unit.is_integral:
        assert type(time.value) is int and 0 <= time.value <= MAX_COUNT
        assert time.value == exact(number)  # no rounding through a float
    else:
        assert type(time.value) is float and math.isfinite(time.value) and time.value == float(number)


@FUZZ
@given(values, st.one_of(st.sampled_from(UNITS), st.text(max_size=4), st.none(), st.integers()))
def test_the_constructor_accepts_or_refuses_cleanly(value: Any, unit: Any) -> None:
    try:
        time = Time(value, unit)
    except (ValueError, TypeError) as error:
        assert len(str(error)) < 400
        return
    assert (type(time.value) is int) == time.unit.is_integral
    assert time.value == (value if time.unit.is_integral else float(value))  # a count exactly; 'dur' as a float


times = st.builds(
    Time,
    st.one_of(st.integers(min_value=0, max_value=MAX_COUNT), st.floats(min_value=0, max_value=1e308)),
    st.just("dur"),
) | st.builds(Time, st.integers(min_value=0, max_value=MAX_COUNT), st.sampled_from(["ep", "ba", "sp", "tok"]))
factors = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)


@FUZZ
@given(times, times, factors)
def test_arithmetic_is_exact_or_refused_cleanly(a: Time, b: Time, factor: Any) -> None:
    """Composer's rules, recomputed with Fractions: a whole unit scaled by a fraction rounds down."""
    operations = (
        ("+", lambda: a + b), ("-", lambda: a - b), ("*", lambda: a * factor), ("r*", lambda: factor * a),
        ("/", lambda: a / factor), ("/t", lambda: a / b), ("%", lambda: a % b),
    )  # fmt: skip
    for name, operation in operations:
        try:
            result = operation()
        except (ValueError, TypeError, ZeroDivisionError) as error:
            assert len(str(error)) < 600, (name, str(error))
            if name in ("+", "/t", "%") and a.unit is not b.unit:
                assert isinstance(error, RuntimeError), "units differ: Composer raises a RuntimeError"
            continue
        assert a.unit is b.unit or name not in ("+", "-", "/t", "%"), "mixed units must be refused"
        if name == "/t":
            assert result.unit is TimeUnit.DURATION and result.value == float(Fraction(a.value) / Fraction(b.value))
            continue
        assert result.unit is a.unit
        if a.unit.is_integral:
            exact = {
                "+": lambda: Fraction(a.value + b.value), "-": lambda: Fraction(a.value - b.value),
                "%": lambda: Fraction(a.value % b.value), "/": lambda: Fraction(a.value) / Fraction(factor),
            }.get(name, lambda: Fraction(a.value) * Fraction(factor))()  # fmt: skip
            assert type(result.value) is int and result.value == math.floor(exact)  # exact integers, rounded down
