"""Which inputs' tensors make each output tensor, at which layer position, with which parameter values.

A merge is planned before anything is read, so that every problem (a tensor one input lacks, shapes
that differ, a required parameter not given) is reported at once and nothing is written. The plan
follows mergekit's: an output is made of *slices*, each a range of layers taken from every one of
its sources (``passthrough`` stacks them; other methods merge them); a recipe's ``models:`` is one
slice of every layer. A tensor's layer is the first all-digit part of its name (``model.layers.3.
mlp.up_proj.weight`` is in layer 3); its position ``t = l / (L − 1)`` over the slice's ``L`` layers
drives parameter gradients. Tensors outside the layers sit at ``t = 0`` and come from the first
slice's sources if their name says embedding (``embed``, ``wte``, ``wpe``), else from the last's.
Torch-free.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from composer_swa.merging.settings import Parameter, SettingError, resolve

if TYPE_CHECKING:
    from composer_swa.merging.methods.registry import MergeInputs, MergeMethod, MergeOptions
    from composer_swa.merging.recipes import TensorWeights

__all__ = ["OutputSlice", "PlanError", "SliceSource", "TensorPlan", "linear_weights", "plan_tensors", "positions"]

_LAYER = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")
_EMBEDDINGS = ("embed", "wte", "wpe")
_LISTED = 20  # problems shown before "... and N more"


class PlanError(ValueError):
    """The inputs do not fit the method or the recipe; the message lists every problem."""


@dataclass(frozen=True)
class SliceSource:
    """One source of a slice: an input (by index), its layers ``[start, stop)`` (``None``: all), its parameters."""

    input: int
    layers: tuple[int, int] | None = None
    settings: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class OutputSlice:
    """Layers of the output taken from ``sources`` (each the same number of layers); ``base``: its base model."""

    sources: tuple[SliceSource, ...]
    settings: Mapping[str, Any] | None = None
    base: int | None = None


@dataclass
class TensorPlan:
    """One output tensor: its entries (input, name there), the base's, and the parameter values resolved for it."""

    name: str
    entries: list[tuple[int, str]]
    base: tuple[int, str] | None
    shared: dict[str, Any] = field(default_factory=dict)
    each: list[dict[str, Any]] = field(default_factory=list)


def _split(name: str) -> tuple[str, int, str] | None:
    match = _LAYER.search(name)
    return (name[: match.start(1)], int(match.group(1)), name[match.end(1) :]) if match else None


def positions(names: Sequence[str]) -> dict[str, float]:
    """Each tensor's position over the layers, as mergekit's gradients read it (``t = l / (L − 1)``, else 0).

    Example:
        >>> positions(["wte.weight", "h.0.w", "h.1.w", "h.2.w"])
        {'wte.weight': 0.0, 'h.0.w': 0.0, 'h.1.w': 0.5, 'h.2.w': 1.0}
    """
    split = {name: _split(name) for name in names}
    count = max((parts[1] for parts in split.values() if parts is not None), default=-1) + 1
    return {name: 0.0 if parts is None else (parts[1] / (count - 1) if count > 1 else 1.0) for name, parts in split.items()}


class _Planner:
    def __init__(self, method: MergeMethod, options: MergeOptions, infos: Sequence[Mapping[str, Any]], labels: Sequence[str]):
        self.method, self.options, self.infos, self.labels = method, options, infos, labels
        self.problems: list[str] = []
        self.setting_problems: dict[str, list[str]] = collections.defaultdict(list)
        self.layers: list[dict[int, list[str]]] = []
        for names in infos:
            by_layer: dict[int, list[str]] = collections.defaultdict(list)
            for name in names:
                if (parts := _split(name)) is not None:
                    by_layer[parts[1]].append(name)
            self.layers.append(by_layer)
        self.plans: list[TensorPlan] = []

    def label(self, k: int) -> str:
        return f"input {k} ({self.labels[k]!r})"

    def layer_count(self, k: int) -> int:
        return max(self.layers[k], default=-1) + 1

    def tensor(
        self, slice_: OutputSlice, name: str, reads: list[tuple[SliceSource, str]], base: tuple[int, str] | None, t: float
    ) -> None:
        missing = [f"{name_k!r} is not in {self.label(s.input)}" for s, name_k in reads if name_k not in self.infos[s.input]]
        if base is not None and base[1] not in self.infos[base[0]]:
            missing.append(f"{base[1]!r} is not in the base model, {self.label(base[0])}")
        if missing:
            self.problems += missing
            return
        present = ([base] if base is not None else []) + [(s.input, name_k) for s, name_k in reads]
        first_k, first_name = present[0]
        first = self.infos[first_k][first_name]
        for k, name_k in present[1:]:
            other = self.infos[k][name_k]
            if tuple(other.shape) != tuple(first.shape):
                self.problems.append(f"{name!r} has shape {list(first.shape)} in {self.label(first_k)}, "
                                     f"{list(other.shape)} in {self.label(k)}")  # fmt: skip
            elif other.dtype != first.dtype:
                self.problems.append(
                    f"{name!r} has dtype {first.dtype} in {self.label(first_k)}, {other.dtype} in {self.label(k)}"
                )
        shared_scopes = (slice_.settings, self.options.settings)
        plan = TensorPlan(name, [(s.input, name_k) for s, name_k in reads], base)
        for parameter in self.method.settings:
            if parameter.scope == "shared":
                plan.shared[parameter.name] = self.resolve(parameter, shared_scopes, name, t, None)
        for s, name_k in reads:
            scopes = (s.settings, *shared_scopes)
            plan.each.append(
                {p.name: self.resolve(p, scopes, name_k, t, s.input) for p in self.method.settings if p.scope != "shared"}
            )
        self.plans.append(plan)

    def resolve(
        self, parameter: Parameter, scopes: Sequence[Mapping[str, Any] | None], name: str, t: float, k: int | None
    ) -> Any:
        try:
            return resolve(parameter, scopes, name, t)
        except SettingError as error:
            where = "" if k is None else f" of {self.label(k)}"
            self.setting_problems[f"parameter {error.parameter!r}{where}: {error.problem}"].append(name)
            return None

    def slice_(self, index: int, slice_: OutputSlice, out_layer: int, outside: str) -> int:
        method, base = self.method, slice_.base if slice_.base is not None else self.options.base_model
        uses_base = method.base != "ignored"
        if method.base == "required" and base is None:
            self.problems.append(f"--method {method.name} needs a base model (--base-model, or a recipe's base_model)")
            return out_layer
        sources = [s for s in slice_.sources if not (uses_base and s.input == base)]
        low, high = method.inputs
        if len(sources) < low or (high is not None and len(sources) > high):
            wanted = f"{low}" if low == high else f"at least {low}" if high is None else f"{low} to {high}"
            self.problems.append(f"--method {method.name} merges {wanted} inputs besides the base model, "
                                 f"slice {index} gives {len(sources)}")  # fmt: skip
            return out_layer
        base_entry = base if uses_base else None
        ranges = [s.layers if s.layers is not None else (0, self.layer_count(s.input)) for s in slice_.sources]
        lengths = {stop - start for start, stop in ranges}
        if len(lengths) > 1:
            self.problems.append(f"slice {index}: every source needs as many layers, got layer ranges {ranges}")
            return out_layer
        start_of = {s.input: r[0] for s, r in zip(slice_.sources, ranges)}
        first = sources[0].input
        readers = ([base_entry] if base_entry is not None else []) + [s.input for s in sources]
        if outside in ("pre", "all", "post"):
            wanted_embedding = {"pre": True, "post": False, "all": None}[outside]
            for name in dict.fromkeys(name for k in readers for name in self.infos[k]):
                if _split(name) is None and (wanted_embedding is None or any(e in name for e in _EMBEDDINGS) == wanted_embedding):
                    base_read = (base_entry, name) if base_entry is not None else None
                    self.tensor(slice_, name, [(s, name) for s in sources], base_read, 0.0)
        length = lengths.pop()
        for offset in range(length):
            t = offset / (length - 1) if length > 1 else 1.0
            templates: dict[tuple[str, str], None] = {}
            for k in readers:
                for name in self.layers[k].get(start_of.get(k, start_of[first]) + offset, []):
                    parts = _split(name)
                    assert parts is not None
                    templates[(parts[0], parts[2])] = None
            for prefix, suffix in templates:
                reads = [(s, f"{prefix}{start_of[s.input] + offset}{suffix}") for s in sources]
                base_read = None
                if base_entry is not None:
                    base_read = (base_entry, f"{prefix}{start_of.get(base_entry, start_of[first]) + offset}{suffix}")
                self.tensor(slice_, f"{prefix}{out_layer + offset}{suffix}", reads, base_read, t)
        return out_layer + length


def plan_tensors(
    method: MergeMethod, options: MergeOptions, infos: Sequence[Mapping[str, Any]], labels: Sequence[str]
) -> list[TensorPlan]:
    """Every output tensor of ``method`` over inputs with tensors ``infos`` (name → shape and dtype), in order.

    Raises:
        PlanError: Listing every missing tensor, shape or dtype difference, layer-range mismatch and
            missing or ill-typed parameter.
    """
    slices = options.slices or (
        OutputSlice(tuple(SliceSource(k, None, options.input_settings[k] if k < len(options.input_settings) else None)
                          for k in range(len(infos)))),
    )  # fmt: skip
    planner = _Planner(method, options, infos, labels)
    out_layer = 0
    for index, slice_ in enumerate(slices):
        outside = "all" if len(slices) == 1 else "pre" if index == 0 else "post" if index == len(slices) - 1 else "none"
        out_layer = planner.slice_(index, slice_, out_layer, outside)
    problems = planner.problems + [
        f"{message} (for tensor {names[0]!r}" + (f" and {len(names) - 1} more)" if len(names) > 1 else ")")
        for message, names in planner.setting_problems.items()
    ]
    if problems:
        more = f"\n  ... and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
        raise PlanError(f"--method {method.name}: {len(problems)} problems:\n  " + "\n  ".join(problems[:_LISTED]) + more)
    return planner.plans


def unknown_settings(method: MergeMethod, options: MergeOptions) -> list[str]:
    """The parameter names a recipe gives that ``method`` does not read (mergekit ignores them too)."""
    known = {parameter.name for parameter in method.settings}
    scopes: list[Mapping[str, Any] | None] = [options.settings, *options.input_settings]
    for slice_ in options.slices or ():
        scopes += [slice_.settings, *(s.settings for s in slice_.sources)]
    return sorted({name for scope in scopes if scope for name in scope} - known)


def linear_weights(settings: Sequence[Parameter], options: MergeOptions, inputs: MergeInputs) -> TensorWeights:
    """Per-tensor weights of ``linear`` from per-input ``weight`` settings (gradients, filters) and ``normalize``:
    one list when every tensor gets the same, else a function of the tensor's name."""
    weight, normalize = settings
    names = inputs.tensor_names()
    table: dict[str, list[float]] = {}
    for name, t in positions(names).items():
        scopes = [(options.input_settings[k] if k < len(options.input_settings) else None, options.settings)
                  for k in range(inputs.count)]  # fmt: skip
        values = [resolve(weight, scope, name, t) for scope in scopes]
        total = sum(values)
        if resolve(normalize, [options.settings], name, t):
            if total == 0:
                raise SettingError("weight", f"the weights sum to 0 and cannot be normalized: {values!r}", name)
            values = [v / total for v in values]
        table[name] = values
    rows = list(table.values())
    if all(row == rows[0] for row in rows):
        return rows[0]
    return table.__getitem__
