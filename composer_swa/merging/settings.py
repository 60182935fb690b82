"""A merge method's parameters as mergekit writes them: scalars, gradients over layers, values filtered by name.

A *setting* is what a recipe gives for one parameter, resolved per tensor (mergekit's
``config.py``, ``evaluate_setting``):

- a scalar: ``0.5``, ``true``, ``"1e-3"`` (read as a number where the parameter is one);
- a gradient: a list of anchors spread evenly over the layers, interpolated linearly at the tensor's
  position ``t`` (layer ``l`` of ``L`` is at ``t = l / (L − 1)``; tensors outside the layers, such as
  embeddings, are at ``t = 0``); booleans and strings pick the anchor at ``int(t · (n − 1))``;
- a filtered list: ``[{filter: self_attn, value: ...}, {value: ...}]``, where the first entry whose
  ``filter`` is a substring of the tensor's name (or that has no filter, or ``"*"``) applies.

Scopes are searched in order (a model's own ``parameters`` before the slice's, before the recipe's
top level); the first that gives the parameter decides, else its default. Torch-free.

Example:
    >>> t = Parameter("t", float)
    >>> resolve(t, [{"t": [{"filter": "mlp", "value": [0, 1]}, {"value": 0.5}]}], "layers.1.mlp.w", 0.25)
    0.25
    >>> resolve(t, [{"t": [{"filter": "mlp", "value": [0, 1]}, {"value": 0.5}]}], "layers.1.attn.w", 0.25)
    0.5
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["REQUIRED", "Parameter", "SettingError", "evaluate", "resolve"]

Scope = Literal["shared", "input", "non_base"]


class SettingError(ValueError):
    """A parameter's value is missing or of the wrong kind; the message names the parameter and the tensor."""

    def __init__(self, parameter: str, problem: str, tensor: str) -> None:
        super().__init__(f"parameter {parameter!r} for tensor {tensor!r}: {problem}")
        self.parameter, self.problem, self.tensor = parameter, problem, tensor


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a parameter that has none: every tensor must be given a value.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Parameter:
    """One parameter a method reads per tensor.

    Attributes:
        name: As in a mergekit recipe (``t``, ``weight``, ``density``, ``lambda``...).
        kind: ``float``, ``int``, ``bool`` or ``str``.
        scope: ``shared`` (one value per tensor), ``input`` (one per input) or ``non_base`` (one per
            input other than the base model).
        default: The value when no scope gives one; :data:`REQUIRED` when there is none.
        help: What it means, for the methods table.
    """

    name: str
    kind: type
    scope: Scope = "shared"
    default: Any = REQUIRED
    help: str = ""

    def check(self, value: Any, tensor: str) -> Any:
        """``value`` as this parameter's kind (YAML's ``"1e-3"`` is a number for a number).

        Raises:
            SettingError: The value is not of this parameter's kind.
        """
        if self.kind is bool and isinstance(value, bool):
            return value
        if self.kind in (int, float) and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if self.kind is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if self.kind is int and isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
            return int(value)
        if self.kind is str and isinstance(value, str):
            return value
        raise SettingError(self.name, f"expected {self.kind.__name__}, got {value!r}", tensor)


def _matches(entry: Mapping[str, Any], name: str) -> bool:
    pattern = entry.get("filter")
    return pattern is None or pattern == "*" or (bool(name) and str(pattern) in name)


def evaluate(parameter: Parameter, setting: Any, name: str, t: float) -> Any:
    """One setting's value for tensor ``name`` at layer position ``t``; ``None`` when no filter matches.

    Example:
        >>> evaluate(Parameter("weight", float), [0.0, 1.0, 0.0], "layers.3.w", 0.75)
        0.5
    """
    if isinstance(setting, Mapping):
        setting = [setting]
    if isinstance(setting, (bool, int, float, str)):
        return parameter.check(setting, name)
    if not isinstance(setting, list):
        raise SettingError(parameter.name, f"expected a value, a list or filters, got {setting!r}", name)
    if not setting:
        return None
    if all(isinstance(entry, (bool, int, float, str)) for entry in setting):
        values = [parameter.check(entry, name) for entry in setting]
        if parameter.kind not in (int, float):
            return values[int(t * (len(values) - 1))]
        scaled = t * (len(values) - 1)
        low = int(scaled)
        high = min(len(values) - 1, low + 1)
        fraction = scaled - low
        return parameter.check((1 - fraction) * values[low] + fraction * values[high], name)
    for entry in setting:
        if not isinstance(entry, Mapping) or "value" not in entry or set(entry) - {"value", "filter"}:
            raise SettingError(parameter.name, f"a list of filters holds mappings of 'value' and 'filter', got {entry!r}", name)
        if _matches(entry, name):
            return evaluate(parameter, entry["value"], name, t)
    return None


def resolve(parameter: Parameter, scopes: Iterable[Mapping[str, Any] | None], name: str, t: float) -> Any:
    """The parameter's value for tensor ``name``: the first scope that gives one, else its default.

    Raises:
        SettingError: No scope gives a value and the parameter has no default, or a value is of the
            wrong kind.
    """
    for scope in scopes:
        if scope is not None and parameter.name in scope:
            value = evaluate(parameter, scope[parameter.name], name, t)
            if value is not None:
                return value
    if parameter.default is REQUIRED:
        raise SettingError(parameter.name, "required, and no value is given", name)
    return parameter.default
