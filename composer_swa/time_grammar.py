"""The units of training time and the time-string grammar (``"0.7dur"``, ``"1e3ba"``, ``"2_000tok"``).

:class:`~composer_swa.time.Time` builds on this; users import both names from :mod:`composer_swa.time`.

Example:
    >>> parse_timestring("2_000TOK")
    (2000, <TimeUnit.TOKEN: 'tok'>)
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from enum import Enum

__all__ = ["MAX_COUNT", "TimeUnit", "check_value", "parse_timestring", "parse_unit", "quote"]


class TimeUnit(str, Enum):
    """Units of training time. ``DURATION`` is a fraction of the whole run's ``max_duration``.

    ``ITERATION`` is Composer's unit for runs of several iterations; a run here is one iteration, so
    a ``Time`` in ``iter`` is refused with a message naming the units to use instead.
    """

    ITERATION = "iter"
    EPOCH = "ep"
    BATCH = "ba"
    SAMPLE = "sp"
    TOKEN = "tok"
    DURATION = "dur"

    @property
    def is_integral(self) -> bool:
        return self is not TimeUnit.DURATION


#: The units a Time can hold (``iter`` is named, and refused, for ported Composer code).
USABLE_UNITS = tuple(unit for unit in TimeUnit if unit is not TimeUnit.ITERATION)
ALLOWED_UNITS = ", ".join(f"'{unit.value}'" for unit in USABLE_UNITS)
#: The largest count of an integer unit: an int64, as checkpoints and tensors hold counters.
MAX_COUNT = 2**63 - 1
ITERATION_REFUSED = (
    "the unit 'iter' counts Composer's training iterations (a run made of several iterations); "
    "a composer_swa run is a single iteration, so express the time in 'ep', 'ba', 'sp', 'tok' or 'dur' instead"
)
_TIME_PATTERN = re.compile(r"^\s*(?P<number>[-+]?[0-9_.]+(?:e[-+]?[0-9_]+)?)\s*(?P<unit>[a-z]+)\s*$")


def quote(value: object) -> str:
    """``repr(value)``, shortened: a huge input must not make a huge message (or, for an int, fail to print)."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit limit for str()
        return f"an integer of about {int(getattr(value, 'bit_length', lambda: 0)() * math.log10(2)):,} digits"
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text):,} characters)"


def parse_unit(unit: TimeUnit | str) -> TimeUnit:
    """The :class:`TimeUnit` of ``unit`` (case-insensitive); ``iter`` and unknown units raise ValueError."""
    try:
        parsed = TimeUnit(unit.lower() if isinstance(unit, str) else unit)
    except (ValueError, TypeError):
        raise ValueError(f"unknown time unit {quote(unit)}; allowed units are {ALLOWED_UNITS}") from None
    if parsed is TimeUnit.ITERATION:
        raise ValueError(ITERATION_REFUSED)
    return parsed


def check_value(value: object, unit: TimeUnit) -> int | float:
    """``value`` as a Time in ``unit`` holds it: an exact int for a whole unit, a float for ``dur``.

    Raises:
        ValueError: A negative or non-finite value, or a count past ``MAX_COUNT``.
        TypeError: Not a number, or a fraction of a whole unit.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Time value must be a number, got {quote(value)}")
    # An int is never passed through math.isfinite or float(): both overflow past 1e308.
    if (isinstance(value, float) and not math.isfinite(value)) or value < 0:
        why = ": time cannot be negative" if value < 0 else ""
        raise ValueError(f"Time value must be a finite number >= 0, got {quote(value)} {unit.value!r}{why}")
    if unit.is_integral:
        if isinstance(value, float) and not value.is_integer():
            raise TypeError(
                f"time unit {unit.value!r} counts whole units, got the fraction {value!r}; "
                f"use an integer, or 'dur' for a fraction of the run"
            )
        if value > MAX_COUNT:
            raise ValueError(f"Time value {quote(value)} {unit.value!r} is past the largest count, 2**63 - 1")
        return int(value)
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"Time value {quote(value)} 'dur' is too large for a fraction of the run") from None


def parse_timestring(timestring: str) -> tuple[int | float, TimeUnit]:
    """``"<number><unit>"`` as ``(value, unit)``: an exact int for a whole unit, a float for ``dur``.

    Raises:
        ValueError: Not a number followed by a known unit, or a number out of range; the message
            quotes the string and lists the allowed units.
        TypeError: A fraction of a whole unit, e.g. ``"1.5ep"``.
    """
    if not isinstance(timestring, str):
        raise TypeError(f"a time string must be a str, got {quote(timestring)}")
    quoted = quote(timestring)
    match = _TIME_PATTERN.match(timestring.lower())
    if match is None:
        raise ValueError(
            f"invalid time string {quoted}: expected a number followed by a unit, "
            f"like '0.7dur', '5ba' or '2_000tok'; allowed units are {ALLOWED_UNITS}"
        )
    unit_text, number_text = match.group("unit"), match.group("number")
    if unit_text == TimeUnit.ITERATION.value:
        raise ValueError(f"invalid time string {quoted}: {ITERATION_REFUSED}")
    if unit_text not in {unit.value for unit in USABLE_UNITS}:
        raise ValueError(f"invalid time string {quoted}: unknown unit {quote(unit_text)}; allowed units are {ALLOWED_UNITS}")
    try:
        float(number_text)  # Python's number syntax: underscores only between digits
        number = Decimal(number_text)  # the exact value
    except (ValueError, ArithmeticError):
        raise ValueError(
            f"invalid time string {quoted}: {quote(number_text)} is not a number; "
            f"expected a number followed by one of {ALLOWED_UNITS}"
        ) from None
    unit = TimeUnit(unit_text)
    if unit.is_integral and number != number.to_integral_value():
        raise TypeError(
            f"invalid time string {quoted}: time unit {unit.value!r} counts whole units, got the fraction "
            f"{quote(number_text)}; use an integer, or 'dur' for a fraction of the run"
        )
    if unit.is_integral and number.copy_abs() > MAX_COUNT:  # checked before int(): 1e999999999 has a billion digits
        raise ValueError(f"invalid time string {quoted}: {quote(number_text)} is outside the counts 0 to 2**63 - 1")
    return (int(number) if unit.is_integral else float(number)), unit
