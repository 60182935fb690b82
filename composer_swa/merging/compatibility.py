"""Whether checkpoints can be averaged: every key, shape and dtype difference between the inputs, by tensor name.

Torch-free: both ``swa-average`` back ends (torch, and NumPy for plain safetensors; see
:mod:`composer_swa.merging.numpy_average`) check their inputs here. An input is anything with
``infos``, a mapping from names to objects with ``shape`` and ``dtype`` (a ``torch.dtype``, or a
safetensors dtype name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from composer_swa.safetensors_format import DTYPES

__all__ = ["CompatibilityReport", "IncompatibleCheckpoints", "KeyPolicy", "check_compatibility", "require_compatible"]

KeyPolicy = Literal["strict", "union", "intersection"]


def _text(dtype: object) -> str:
    """A dtype as torch prints it, whichever back end read it: ``torch.bfloat16``."""
    return f"torch.{DTYPES[dtype][0]}" if isinstance(dtype, str) else str(dtype)


class IncompatibleCheckpoints(ValueError):
    """The inputs differ in keys, shapes or dtypes; the message lists every difference."""


@dataclass
class CompatibilityReport:
    """What the inputs share: the output's tensors, and every difference found."""

    names: list[str]
    infos: dict[str, Any]
    present: dict[str, list[int]]
    differences: list[str] = field(default_factory=list)

    def text(self, paths: Sequence[str]) -> str:
        lines = [f"{len(paths)} inputs, {len(self.names)} tensors to write"]
        lines += [f"  [{k}] {path}" for k, path in enumerate(paths)]
        lines += [f"  difference: {line}" for line in self.differences] or ["  no differences in keys, shapes or dtypes"]
        return "\n".join(lines)


def check_compatibility(sources: Sequence[Any], keys: KeyPolicy = "strict") -> CompatibilityReport:
    """Compares every input's tensors with the first's: keys (per ``keys``), shapes and dtypes.

    ``strict`` counts a key missing anywhere as a difference; ``union`` averages each key over the
    inputs that have it; ``intersection`` keeps only the keys all inputs have. Shapes and dtypes of
    shared keys must always agree.
    """
    names: list[str] = []
    for source in sources:
        names += [name for name in source.infos if name not in set(names)]
    present = {name: [k for k, source in enumerate(sources) if name in source.infos] for name in names}
    differences = []
    kept = []
    for name in names:
        holders = present[name]
        if len(holders) < len(sources):
            if keys == "intersection":
                continue
            if keys == "strict":
                lacking = [k for k in range(len(sources)) if k not in holders]
                differences.append(f"{name!r} is in inputs {holders} but not in {lacking}")
                continue
        first = sources[holders[0]].infos[name]
        for k in holders[1:]:
            other = sources[k].infos[name]
            if other.shape != first.shape:
                differences.append(
                    f"{name!r} has shape {list(first.shape)} in input {holders[0]}, {list(other.shape)} in input {k}"
                )
            elif other.dtype != first.dtype:
                dtypes = f"{_text(first.dtype)} in input {holders[0]}, {_text(other.dtype)} in input {k}"
                differences.append(f"{name!r} has dtype {dtypes}")
        kept.append(name)
    infos = {name: sources[present[name][0]].infos[name] for name in kept}
    return CompatibilityReport(kept, infos, {name: present[name] for name in kept}, differences)


def require_compatible(sources: Sequence[Any], keys: KeyPolicy) -> CompatibilityReport:
    """The report of :func:`check_compatibility`, when it finds no difference.

    Raises:
        IncompatibleCheckpoints: Listing every key, shape and dtype difference.
    """
    report = check_compatibility(sources, keys)
    if report.differences:
        raise IncompatibleCheckpoints(
            f"the {len(sources)} inputs do not match ({len(report.differences)} differences; "
            "--union/--intersection relax keys only):\n" + report.text([str(s.path) for s in sources])
        )
    return report
