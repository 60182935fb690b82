"""The index of a post-hoc EMA snapshot folder: which file holds which power EMA at which step.

:class:`~composer_swa.algorithms.posthoc_ema.PostHocEMA` writes one safetensors file per tracked
profile at every snapshot and rewrites ``posthoc_ema.json`` beside them (atomically) after each;
reconstruction reads only the folder, and :func:`solve_snapshot_weights` plans it from the index
alone. No torch here, so torch-free tools can read it.

The file is JSON::

    {"format": "composer_swa.posthoc_ema", "version": 1,
     "snapshots": [{"file": "...", "step": 1000, "gamma": 16.97, "sigma_rel": 0.05}, ...]}

``step`` is the batch count ``t`` the EMA was read at (its profile is ``p(τ; t, γ)``, see
:mod:`composer_swa.averaging.power_ema`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from composer_swa.atomic_files import atomic_write_text
from composer_swa.averaging.power_ema import Reconstruction, sigma_rel_to_gamma, solve_weights

__all__ = ["INDEX_NAME", "SnapshotEntry", "newest_first", "read_index", "snapshot_name", "solve_snapshot_weights", "write_index"]

INDEX_NAME = "posthoc_ema.json"
_FORMAT, _VERSION = "composer_swa.posthoc_ema", 1


@dataclass(frozen=True)
class SnapshotEntry:
    """One stored snapshot: its file (relative to the folder), step ``t``, exponent ``γ`` and ``σ_rel``."""

    file: str
    step: int
    gamma: float
    sigma_rel: float


def snapshot_name(sigma_rel: float, step: int) -> str:
    """The file name of the snapshot of profile ``sigma_rel`` at ``step``.

    Example:
        >>> snapshot_name(0.05, 1200)
        'ema-sigma_rel0.05-ba000001200.safetensors'
    """
    return f"ema-sigma_rel{sigma_rel:.6g}-ba{step:09d}.safetensors"


def write_index(folder: Path, entries: list[SnapshotEntry]) -> None:
    """Writes the index of ``entries`` into ``folder``, atomically.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_index(folder, [SnapshotEntry("a.safetensors", 10, 6.94, 0.1)])
        >>> read_index(folder)
        [SnapshotEntry(file='a.safetensors', step=10, gamma=6.94, sigma_rel=0.1)]
    """
    document = {"format": _FORMAT, "version": _VERSION, "snapshots": [asdict(entry) for entry in entries]}
    atomic_write_text(folder / INDEX_NAME, json.dumps(document, indent=1) + "\n")


def read_index(folder: Path) -> list[SnapshotEntry]:
    """The entries of ``folder``'s index, in the order written.

    Raises:
        FileNotFoundError: ``folder`` has no index.
        ValueError: The index is not a post-hoc EMA index this version reads.
    """
    path = Path(folder) / INDEX_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{str(folder)!r} holds no {INDEX_NAME}: it is not a folder of post-hoc EMA snapshots (PostHocEMA's snapshot_dir)"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT or document.get("version") != _VERSION:
        raise ValueError(f"{str(path)!r} is not a post-hoc EMA index of format {_FORMAT!r} version {_VERSION}")
    try:
        return [
            SnapshotEntry(str(item["file"]), int(item["step"]), float(item["gamma"]), float(item["sigma_rel"]))
            for item in document["snapshots"]
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{str(path)!r} has a malformed snapshot entry: {error!r}") from None


def solve_snapshot_weights(
    entries: list[SnapshotEntry], sigma_rel: float, step: int | None = None
) -> tuple[list[SnapshotEntry], Reconstruction]:
    """The snapshots that combine into the power EMA ``sigma_rel`` read at ``step``, and their weights.

    Only snapshots taken at or before ``step`` (default: the last one's) are used: later ones
    average weights the target does not see.

    Raises:
        ValueError: No snapshot at or before ``step``.

    Example:
        >>> entries = [SnapshotEntry(f"{s}-{t}", t, sigma_rel_to_gamma(s), s) for t in (50, 100) for s in (0.05, 0.1)]
        >>> used, fit = solve_snapshot_weights(entries, 0.1)
        >>> [entry.file for entry, weight in zip(used, fit.weights) if abs(weight) > 1e-9]
        ['0.1-100']
    """
    target = max(entry.step for entry in entries) if step is None and entries else step
    used = [entry for entry in entries if target is not None and entry.step <= target]
    if not used or target is None:
        raise ValueError(f"no post-hoc EMA snapshot at or before step {step} to reconstruct from")
    fit = solve_weights([e.step for e in used], [e.gamma for e in used], target, sigma_rel_to_gamma(sigma_rel))
    return used, fit


def newest_first(entries: list[SnapshotEntry]) -> list[SnapshotEntry]:
    """The snapshots from the last step back, in index order within a step: the order every post-hoc sum
    takes, so that the streamed merge (which copies integer tensors from its first input) and
    :func:`~composer_swa.merging.posthoc.reconstruct` agree to the bit.

    Example:
        >>> newest_first([SnapshotEntry("a", 10, 1.0, 0.2), SnapshotEntry("b", 20, 1.0, 0.2)])[0].file
        'b'
    """
    return sorted(entries, key=lambda entry: -entry.step)
