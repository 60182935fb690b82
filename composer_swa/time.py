"""Training time: ``Time`` values such as ``"0.7dur"`` or ``"5ba"`` (a run's position is :mod:`composer_swa.timestamp`).

Time strings are the user's language. They are parsed once, in constructors, and resolved to batch
counts once, when the run's length is known (at ``Event.FIT_START``, by
:class:`~composer_swa.batch_resolver.BatchResolver`). Everything on the hot path
compares plain integers. Arithmetic and comparisons follow Composer's ``Time``: a plain number takes
the other operand's unit, ``/`` of two Times is a ``dur`` ratio, and a whole unit scaled by a
fraction rounds down.

Example:
    >>> Time.from_timestring("0.7dur")
    Time(0.7, 'dur')
    >>> Time(5, "ba") + Time(3, "ba")
    Time(8, 'ba')
    >>> Time(4, "ep") / Time(2, "ep"), Time(7, "ba") / 2, Time(7, "ba") % 3
    (Time(2.0, 'dur'), Time(3, 'ba'), Time(1, 'ba'))
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from composer_swa.time_grammar import MAX_COUNT as MAX_COUNT  # the largest count, for the package's own checks
from composer_swa.time_grammar import TimeUnit, check_value, parse_timestring, parse_unit, quote

__all__ = ["Time", "TimeUnit"]


class UnitMismatchError(TypeError, RuntimeError):
    """Two Times in different units met: a TypeError as everywhere here, and a RuntimeError as in Composer."""


class Time:
    """An amount of training time in one unit.

    Integer units (``ep``, ``ba``, ``sp``, ``tok``) hold an ``int``; ``dur`` holds a ``float``.
    Values are never negative (Composer allows negative Times; here a result below zero raises).

    Operations, as Composer defines them:

    - ``+``, ``-``, ``%`` and the orderings need one unit on both sides; a plain number or a time
      string is read in this Time's unit (``Time(5, "ba") < 7``, ``Time(5, "ba") + "2ba"``).
    - ``*`` by a number scales the value; by a Time, one side must be ``dur`` and the result has the
      other's unit (``Time(10, "ep") * Time(0.5, "dur")`` is ``Time(5, 'ep')``).
    - ``/`` by a number scales the value; by a Time of the same unit it is their ratio in ``dur``.
    - A whole unit scaled by a fraction rounds down, exactly (``Time(3, "ep") * 0.5`` is 1 epoch).
    - ``==`` is False across units (Composer raises there) and never raises.

    Args:
        value: The amount. An integral float (``1e3``) is accepted for integer units.
        unit: A :class:`TimeUnit` or its string value, case-insensitive; ``iter`` is refused (see
            :class:`TimeUnit`).

    Raises:
        ValueError: An unknown unit or ``iter``, a negative or non-finite value, or a count past 2**63 - 1.
        TypeError: A value that is not a number, or a fraction of a whole unit (``Time(1.5, "ep")``).

    Example:
        >>> Time(2, "ep") < Time(3, "ep")
        True
        >>> Time.from_timestring("2_000TOK")
        Time(2000, 'tok')
        >>> Time(2, "ep") * Time(0.5, "dur")
        Time(1, 'ep')
    """

    __slots__ = ("_unit", "_value")

    def __init__(self, value: int | float, unit: TimeUnit | str) -> None:
        self._unit = parse_unit(unit)
        self._value = check_value(value, self._unit)

    @classmethod
    def from_timestring(cls, timestring: str) -> Time:
        """Parses ``"<number><unit>"``, e.g. ``"0.7dur"``, ``"5ba"``, ``"1e3ba"``, ``"2_000tok"``.

        Counts are read exactly (``"9007199254740993ba"`` is that many batches, not the nearest float).

        Raises:
            ValueError: If the string is not a number followed by a known unit, or the number is out
                of range; the message quotes the string and lists the allowed units.
            TypeError: If an integer unit is given a fraction, e.g. ``"1.5ep"``.
        """
        value, unit = parse_timestring(timestring)
        try:
            return cls(value, unit)
        except (TypeError, ValueError) as error:
            raise type(error)(f"invalid time string {quote(timestring)}: {error}") from None

    @classmethod
    def from_input(cls, value: Time | str | int | float, default_int_unit: TimeUnit | str | None = None) -> Time:
        """A Time from a Time, a time string, or a number in ``default_int_unit`` (Composer's ``from_input``).

        Example:
            >>> Time.from_input("5ep"), Time.from_input(5, "ep")
            (Time(5, 'ep'), Time(5, 'ep'))
        """
        if isinstance(value, Time):
            return value
        if isinstance(value, str):
            return cls.from_timestring(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if default_int_unit is None:
                raise ValueError(f"a number ({value!r}) needs a unit: pass default_int_unit, or a time string like '5ba'")
            return cls(value, default_int_unit)
        raise TypeError(f"cannot make a Time from {quote(value)}: expected a Time, a time string or a number")

    @classmethod
    def from_epoch(cls, epoch: int) -> Time:
        """``Time(epoch, "ep")``; ``from_batch``, ``from_sample``, ``from_token`` likewise."""
        return cls(epoch, TimeUnit.EPOCH)

    @classmethod
    def from_batch(cls, batch: int) -> Time:
        return cls(batch, TimeUnit.BATCH)

    @classmethod
    def from_sample(cls, sample: int) -> Time:
        return cls(sample, TimeUnit.SAMPLE)

    @classmethod
    def from_token(cls, token: int) -> Time:
        return cls(token, TimeUnit.TOKEN)

    @classmethod
    def from_duration(cls, duration: float) -> Time:
        """``Time(duration, "dur")``: a fraction of the run's ``max_duration``."""
        return cls(duration, TimeUnit.DURATION)

    @classmethod
    def from_iteration(cls, iteration: int) -> Time:
        """Composer's ``Time(iteration, "iter")``; always raises ValueError (see :class:`TimeUnit`)."""
        return cls(iteration, TimeUnit.ITERATION)

    @property
    def value(self) -> int | float:
        return self._value

    @property
    def unit(self) -> TimeUnit:
        return self._unit

    def to_timestring(self) -> str:
        """``"5ep"`` for ``Time(5, "ep")``: the string :meth:`from_timestring` reads back."""
        return str(self)

    def _operand(self, other: object, operation: str, same_unit: bool = True) -> Time:
        """``other`` as a Time (a number in this Time's unit), in this unit when ``same_unit``."""
        pair = f"{self} {'by' if operation in ('multiply', 'divide') else 'and'} {quote(other)}"
        if isinstance(other, Time):
            time = other
        elif isinstance(other, str) or (isinstance(other, (int, float)) and not isinstance(other, bool)):
            try:
                time = Time.from_input(other, self._unit)
            except (TypeError, ValueError) as error:  # an unreadable string is the wrong kind of operand
                raise (TypeError if isinstance(other, str) else type(error))(f"cannot {operation} {pair}: {error}") from None
        else:
            raise TypeError(f"cannot {operation} {pair}: expected a Time, a time string or a number")
        if same_unit and time._unit is not self._unit:
            raise UnitMismatchError(
                f"cannot {operation} {self} and {time}: the units differ; resolve both to batches "
                f"with BatchResolver.to_batches() first"
            )
        return time

    def _result(self, value: int | float | Fraction, unit: TimeUnit, expression: str) -> Time:
        if isinstance(value, Fraction):  # a whole unit scaled by a fraction rounds down, as Composer's int()
            value = math.floor(value) if unit.is_integral else float(value) if abs(value) < 2**1000 else math.inf
        try:
            return Time(value, unit)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{expression}: {error}") from None

    def __add__(self, other: Time | int | float | str) -> Time:
        other = self._operand(other, "add")
        return self._result(self._value + other._value, self._unit, f"{self} + {other}")

    __radd__ = __add__

    def __sub__(self, other: Time | int | float | str) -> Time:
        other = self._operand(other, "subtract")
        return self._result(self._value - other._value, self._unit, f"{self} - {other}")

    def __rsub__(self, other: Time | int | float | str) -> Time:
        other = self._operand(other, "subtract")
        return self._result(other._value - self._value, self._unit, f"{other} - {self}")

    def __mul__(self, factor: Time | int | float | str) -> Time:
        # A number is checked first: `Time(10**9, "ba") * "ab"` must not build a 2 GB string.
        if isinstance(factor, (int, float)) and not isinstance(factor, bool):
            return self._scale(factor, "*")
        other = self._operand(factor, "multiply", same_unit=False)
        if TimeUnit.DURATION not in (self._unit, other._unit):
            raise UnitMismatchError(f"cannot multiply {self} by {other}: one of the two must be in 'dur'")
        scaled, fraction = (other, self) if other._unit is not TimeUnit.DURATION else (self, other)
        return scaled._scale(fraction._value, "*")

    __rmul__ = __mul__

    def __truediv__(self, divisor: Time | int | float | str) -> Time:
        if isinstance(divisor, (int, float)) and not isinstance(divisor, bool):
            return self._scale(divisor, "/")
        other = self._operand(divisor, "divide")
        if other._value == 0:
            raise ZeroDivisionError(f"cannot divide {self} by {other}")
        return self._result(Fraction(self._value) / Fraction(other._value), TimeUnit.DURATION, f"{self} / {other}")

    def __mod__(self, divisor: Time | int | float | str) -> Time:
        other = self._operand(divisor, "take the remainder of")
        if other._value == 0:
            raise ZeroDivisionError(f"cannot take {self} modulo {other}")
        return self._result(self._value % other._value, self._unit, f"{self} % {other}")

    def _scale(self, factor: int | float, operator: str) -> Time:
        """``self * factor`` or ``self / factor``: a count exactly (rounded down), ``dur`` as a float."""
        expression = f"{self} {operator} {quote(factor)}"
        verb = "multiply" if operator == "*" else "divide"
        if isinstance(factor, float) and not math.isfinite(factor):
            raise ValueError(f"cannot {verb} {self} by {factor!r}: the factor must be finite")
        if operator == "/" and factor == 0:
            raise ZeroDivisionError(f"cannot divide {self} by zero")
        if self._unit.is_integral:  # exact, so a count stays an exact integer (no rounding through a float)
            exact = Fraction(self._value) * Fraction(factor) if operator == "*" else Fraction(self._value) / Fraction(factor)
            return self._result(exact if abs(exact) <= MAX_COUNT else math.inf, self._unit, expression)
        if abs(factor) >= 2**1000:  # float(huge int) overflows
            return self._result(math.inf if operator == "*" else 0.0, self._unit, expression)
        return self._result(self._value * factor if operator == "*" else self._value / factor, self._unit, expression)

    def __neg__(self) -> Time:
        return self._result(-self._value, self._unit, f"-{self}")  # refused unless zero: times are never negative

    def __pos__(self) -> Time:
        return self

    def __int__(self) -> int:
        return int(self._value)

    def __float__(self) -> float:
        return float(self._value)

    # Comparison -------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (Time, str, int, float)) or isinstance(other, bool):
            return NotImplemented
        try:
            time = self._operand(other, "compare", same_unit=False)
        except (TypeError, ValueError):
            return False
        return self._unit is time._unit and self._value == time._value

    def __hash__(self) -> int:
        return hash((self._value, self._unit))

    def _order(self, other: object, compare: Callable[[Any, Any], bool]) -> bool:
        if not isinstance(other, (Time, str, int, float)) or isinstance(other, bool):
            return NotImplemented  # e.g. a Timestamp: Python then asks it (``Time(5, "ep") <= state.timestamp``)
        return compare(self._value, self._operand(other, "compare")._value)

    def __lt__(self, other: object) -> bool:
        return self._order(other, operator.lt)

    def __le__(self, other: object) -> bool:
        return self._order(other, operator.le)

    def __gt__(self, other: object) -> bool:
        return self._order(other, operator.gt)

    def __ge__(self, other: object) -> bool:
        return self._order(other, operator.ge)

    def __repr__(self) -> str:
        return f"Time({self._value!r}, {self._unit.value!r})"

    def __str__(self) -> str:
        return f"{self._value}{self._unit.value}"


def as_time(value: Time | str | int, argument: str = "time", int_unit: TimeUnit = TimeUnit.BATCH) -> Time:
    """:meth:`Time.from_input` for ``argument`` (named in errors); an int counts ``int_unit`` (epochs for the Trainer's).

    Example:
        >>> as_time(3, "max_duration", TimeUnit.EPOCH), as_time("3ba", "max_duration", TimeUnit.EPOCH)
        (Time(3, 'ep'), Time(3, 'ba'))
    """
    if not isinstance(value, (Time, str, int)) or isinstance(value, bool):
        counted = "epochs" if int_unit is TimeUnit.EPOCH else "batches"
        raise TypeError(f"{argument} must be a Time, a time string like '5ba', or an int of {counted}, got {value!r}")
    if isinstance(value, str):
        try:
            return Time.from_timestring(value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{argument}: {error}") from None
    return Time.from_input(value, int_unit)
