"""Training time: ``Time`` values such as ``"0.7dur"`` or ``"5ba"`` (a run's position is :mod:`composer_swa.timestamp`).

:class:`~composer_swa.batch_resolver.BatchResolver` turns a ``Time`` into a count of completed batches.

Time strings are the user's language. They are parsed once, in constructors, and resolved to batch
counts once, when the run's length is known (at ``Event.FIT_START``). Everything on the hot path
compares plain integers.

Example:
    >>> Time.from_timestring("0.7dur")
    Time(0.7, 'dur')
    >>> Time(5, "ba") + Time(3, "ba")
    Time(8, 'ba')
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from enum import Enum
from fractions import Fraction

__all__ = ["Time", "TimeUnit"]


class TimeUnit(str, Enum):
    """Units of training time. ``DURATION`` is a fraction of the whole run's ``max_duration``."""

    EPOCH = "ep"
    BATCH = "ba"
    SAMPLE = "sp"
    TOKEN = "tok"
    DURATION = "dur"

    @property
    def is_integral(self) -> bool:
        return self is not TimeUnit.DURATION


_ALLOWED_UNITS = ", ".join(f"'{unit.value}'" for unit in TimeUnit)
#: The largest count of an integer unit: an int64, as checkpoints and tensors hold counters.
MAX_COUNT = 2**63 - 1
_TIME_PATTERN = re.compile(r"^\s*(?P<number>[-+]?[0-9_.]+(?:e[-+]?[0-9_]+)?)\s*(?P<unit>[a-z]+)\s*$")


def _parse_unit(unit: TimeUnit | str) -> TimeUnit:
    try:
        return TimeUnit(unit.lower() if isinstance(unit, str) else unit)
    except (ValueError, TypeError):
        raise ValueError(f"unknown time unit {_quote(unit)}; allowed units are {_ALLOWED_UNITS}") from None


def _quote(value: object) -> str:
    """``repr(value)``, shortened: a huge input must not make a huge message (or, for an int, fail to print)."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit limit for str()
        return f"an integer of about {int(getattr(value, 'bit_length', lambda: 0)() * math.log10(2)):,} digits"
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text):,} characters)"


class Time:
    """An amount of training time in one unit.

    Integer units (``ep``, ``ba``, ``sp``, ``tok``) hold an ``int``; ``dur`` holds a ``float``.
    Values are never negative. Arithmetic and ordering work within one unit; mixing units raises,
    because converting between them needs the run's length (see :class:`BatchResolver`).

    Args:
        value: The amount. An integral float (``1e3``) is accepted for integer units.
        unit: A :class:`TimeUnit` or its string value, case-insensitive.

    Raises:
        ValueError: On an unknown unit, a negative or non-finite value, or a count past ``MAX_COUNT``
            (2**63 - 1); integers are never rounded through a float.
        TypeError: On a fractional value for an integer unit, e.g. ``Time(1.5, "ep")``, or a value
            (or factor) that is not a number.

    Example:
        >>> Time(2, "ep") < Time(3, "ep")
        True
        >>> Time.from_timestring("2_000TOK")
        Time(2000, 'tok')
    """

    __slots__ = ("_unit", "_value")

    def __init__(self, value: int | float, unit: TimeUnit | str) -> None:
        parsed_unit = _parse_unit(unit)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"Time value must be a number, got {_quote(value)}")
        # An int is never passed through math.isfinite or float(): both overflow past 1e308.
        if (isinstance(value, float) and not math.isfinite(value)) or value < 0:
            why = ": time cannot be negative" if value < 0 else ""
            raise ValueError(f"Time value must be a finite number >= 0, got {_quote(value)} {parsed_unit.value!r}{why}")
        if parsed_unit.is_integral:
            if isinstance(value, float) and not value.is_integer():
                raise TypeError(
                    f"time unit {parsed_unit.value!r} counts whole units, got the fraction {value!r}; "
                    f"use an integer, or 'dur' for a fraction of the run"
                )
            if value > MAX_COUNT:
                raise ValueError(f"Time value {_quote(value)} {parsed_unit.value!r} is past the largest count, 2**63 - 1")
            value = int(value)
        else:
            try:
                value = float(value)
            except OverflowError:
                raise ValueError(f"Time value {_quote(value)} 'dur' is too large for a fraction of the run") from None
        self._value: int | float = value
        self._unit = parsed_unit

    @classmethod
    def from_timestring(cls, timestring: str) -> Time:
        """Parses ``"<number><unit>"``, e.g. ``"0.7dur"``, ``"5ba"``, ``"1e3ba"``, ``"2_000tok"``.

        Counts are read exactly (``"9007199254740993ba"`` is that many batches, not the nearest float).

        Raises:
            ValueError: If the string is not a number followed by a known unit, or the number is out
                of range; the message quotes the string and lists the allowed units.
            TypeError: If an integer unit is given a fraction, e.g. ``"1.5ep"``.
        """
        if not isinstance(timestring, str):
            raise TypeError(f"a time string must be a str, got {_quote(timestring)}")
        quoted = _quote(timestring)
        match = _TIME_PATTERN.match(timestring.lower())
        if match is None:
            raise ValueError(
                f"invalid time string {quoted}: expected a number followed by a unit, "
                f"like '0.7dur', '5ba' or '2_000tok'; allowed units are {_ALLOWED_UNITS}"
            )
        unit_text, number_text = match.group("unit"), match.group("number")
        if unit_text not in {unit.value for unit in TimeUnit}:
            raise ValueError(
                f"invalid time string {quoted}: unknown unit {_quote(unit_text)}; allowed units are {_ALLOWED_UNITS}"
            )
        try:
            float(number_text)  # Python's number syntax: underscores only between digits
            number = Decimal(number_text)  # the exact value
        except (ValueError, ArithmeticError):
            raise ValueError(
                f"invalid time string {quoted}: {_quote(number_text)} is not a number; "
                f"expected a number followed by one of {_ALLOWED_UNITS}"
            ) from None
        unit = TimeUnit(unit_text)
        if unit.is_integral and number != number.to_integral_value():
            raise TypeError(
                f"invalid time string {quoted}: time unit {unit.value!r} counts whole units, got the fraction "
                f"{_quote(number_text)}; use an integer, or 'dur' for a fraction of the run"
            )
        if unit.is_integral and number.copy_abs() > MAX_COUNT:  # checked before int(): 1e999999999 has a billion digits
            raise ValueError(f"invalid time string {quoted}: {_quote(number_text)} is outside the counts 0 to 2**63 - 1")
        try:
            return cls(int(number) if unit.is_integral else float(number), unit)
        except (TypeError, ValueError) as error:
            raise type(error)(f"invalid time string {quoted}: {error}") from None

    @property
    def value(self) -> int | float:
        return self._value

    @property
    def unit(self) -> TimeUnit:
        return self._unit

    def _same_unit(self, other: object, operation: str) -> Time:
        if not isinstance(other, Time):
            raise TypeError(f"cannot {operation} {self} and {other!r}: both must be Time values")
        if other._unit is not self._unit:
            raise TypeError(
                f"cannot {operation} {self} and {other}: the units differ; resolve both to batches "
                f"with BatchResolver.to_batches() first"
            )
        return other

    def __add__(self, other: Time) -> Time:
        total = self._value + self._same_unit(other, "add")._value
        return self._result(total, f"{self} + {other}")

    def __sub__(self, other: Time) -> Time:
        difference = self._value - self._same_unit(other, "subtract")._value
        return self._result(difference, f"{self} - {other}")

    def __mul__(self, factor: int | float) -> Time:
        # Checked first: `Time(10**9, "ba") * "ab"` would build a 2 GB string before Time() refused it.
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            raise TypeError(f"cannot multiply {self} by {_quote(factor)}: the factor must be an int or a float")
        if isinstance(factor, float) and not math.isfinite(factor):
            raise ValueError(f"cannot multiply {self} by {factor!r}: the factor must be finite")
        product: int | float
        if self._unit.is_integral:  # exact, so a count stays an exact integer (no rounding through a float)
            exact = Fraction(self._value) * Fraction(factor)
            product = exact.numerator if exact.denominator == 1 else float(exact) if abs(exact) <= MAX_COUNT else math.inf
        else:
            product = self._value * factor if abs(factor) < 2**1000 else math.inf  # float(huge int) overflows
        return self._result(product, f"{self} * {_quote(factor)}")

    __rmul__ = __mul__

    def _result(self, value: int | float, expression: str) -> Time:
        try:
            return Time(value, self._unit)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{expression}: {error}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Time) and self._unit is other._unit and self._value == other._value

    def __hash__(self) -> int:
        return hash((self._value, self._unit))

    def __lt__(self, other: Time) -> bool:
        return self._value < self._same_unit(other, "compare")._value

    def __le__(self, other: Time) -> bool:
        return self._value <= self._same_unit(other, "compare")._value

    def __gt__(self, other: Time) -> bool:
        return self._value > self._same_unit(other, "compare")._value

    def __ge__(self, other: Time) -> bool:
        return self._value >= self._same_unit(other, "compare")._value

    def __repr__(self) -> str:
        return f"Time({self._value!r}, {self._unit.value!r})"

    def __str__(self) -> str:
        return f"{self._value}{self._unit.value}"


def as_time(value: Time | str | int, argument: str = "time") -> Time:
    """Accepts a ``Time``, a time string, or an int (read as batches), naming ``argument`` on error."""
    if isinstance(value, Time):
        return value
    if isinstance(value, str):
        try:
            return Time.from_timestring(value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{argument}: {error}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return Time(value, TimeUnit.BATCH)
    raise TypeError(f"{argument} must be a Time, a time string like '5ba', or an int of batches, got {value!r}")


def epochs_if_int(value: Time | str | int, argument: str) -> Time:
    """As :func:`as_time`, but an int counts epochs: the Trainer's ``max_duration``, ``eval_interval`` and
    ``save_interval``, and ``fit(duration=...)``, as in Composer.

    Example:
        >>> epochs_if_int(3, "max_duration"), epochs_if_int("3ba", "max_duration")
        (Time(3, 'ep'), Time(3, 'ba'))
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return Time(value, TimeUnit.EPOCH)
    if not isinstance(value, (Time, str)):
        raise TypeError(f"{argument} must be a Time, a time string like '5ba', or an int of epochs, got {value!r}")
    return as_time(value, argument)
