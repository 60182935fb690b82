"""Oldest first: the order that LAWA and decay-emulating weights need, checked rather than trusted.

``swa-average ckpt/*.pt --method lawa`` gets its inputs in the shell's order, where ``ep10`` sorts
before ``ep2``. composer_swa checkpoints (and exports) store their training step, so they are put in
step order; for other inputs an order that goes backwards is refused unless the user says it is
intended.
"""

from __future__ import annotations

import itertools
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["chronological", "stored_step"]

_NUMBER = re.compile(r"\d+")


def stored_step(path: str | Path) -> int | None:
    """The training step (batches done) a composer_swa checkpoint or export was saved at; ``None`` for other files.

    Example:
        >>> import tempfile, torch
        >>> from composer_swa.checkpoint.files import write_checkpoint
        >>> path = Path(tempfile.mkdtemp()) / "ep1-ba7.pt"
        >>> write_checkpoint({"format": "composer_swa.checkpoint", "state": {"timestamp": {"batch_count": 7}}}, path)
        >>> stored_step(path)
        7
    """
    path = Path(path)
    if path.is_file() and path.suffix != ".safetensors" and not path.name.endswith(".index.json"):
        from composer_swa.checkpoint.files import CHECKPOINT_FORMAT, _load_weights_only

        payload = _load_weights_only(path, mmap=zipfile.is_zipfile(path))  # mmap: tensors are not read
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            return None
        try:
            return int(payload["state"]["timestamp"]["batch_count"])
        except (KeyError, TypeError, ValueError):
            return None
    from composer_swa.safetensors_format import SafetensorsFile, safetensors_files

    found = safetensors_files(path)
    if found is None:
        return None
    first = SafetensorsFile(found[1][0])  # the metadata of an input is its first file's
    first.close()
    batch = first.metadata.get("batch", "")  # composer_swa's exports record the step they were written at
    return int(batch) if isinstance(batch, str) and batch.isdigit() else None


def chronological(inputs: Sequence[str], method: str, keep_order: bool = False) -> tuple[list[str], str]:
    """The inputs oldest first, and a line saying how that order was decided.

    With a step stored in every input, they are sorted by it. Otherwise the given order stands,
    unless it goes backwards: by the steps that are known, or by the numbers in names that differ
    only in their numbers (``ep10`` before ``ep2``). ``keep_order`` takes the order as given.

    Raises:
        ValueError: The order goes backwards and ``keep_order`` is not set.

    Example:
        >>> import tempfile, torch
        >>> from safetensors.torch import save_file
        >>> folder = tempfile.mkdtemp()
        >>> paths = [f"{folder}/ep{k}.safetensors" for k in (10, 2)]  # as a shell sorts them
        >>> for path in paths:
        ...     save_file({"w": torch.ones(1)}, path)
        >>> chronological(paths, "lawa")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: --method lawa weighs the inputs by position, oldest first, but their order goes backwards: ...
    """
    if keep_order:
        return list(inputs), "inputs averaged in the order given (--keep-order)"
    steps = [stored_step(path) for path in inputs]
    known = [(step, path) for step, path in zip(steps, inputs) if step is not None]
    if len(known) == len(inputs):
        ordered = [path for _, path in sorted(known, key=lambda pair: pair[0])]  # stable: equal steps keep their order
        listing = ", ".join(f"{path} (step {step})" for step, path in sorted(known, key=lambda pair: pair[0]))
        return ordered, f"inputs ordered by the training step stored in each, oldest first: {listing}"
    for (step, path), (next_step, next_path) in itertools.pairwise(known):
        if next_step < step:
            raise ValueError(_backwards(method, f"{next_path!r} (step {next_step}) comes after {path!r} (step {step})"))
    skeletons = {_NUMBER.sub("#", path) for path in inputs}
    numbers = [tuple(int(n) for n in _NUMBER.findall(path)) for path in inputs]
    if len(skeletons) == 1 and numbers[0]:
        for k in range(len(inputs) - 1):
            if numbers[k + 1] < numbers[k]:
                raise ValueError(_backwards(method, f"{inputs[k + 1]!r} comes after {inputs[k]!r}"))
        return list(inputs), "inputs averaged in the order given (no training steps stored; the numbers in their names ascend)"
    return list(inputs), "inputs averaged in the order given, taken as oldest first"


def _backwards(method: str, where: str) -> str:
    return (
        f"--method {method} weighs the inputs by position, oldest first, but their order goes backwards: {where} "
        "(a shell sorts ep10 before ep2). Give them oldest first, or pass --keep-order if this order is intended"
    )
