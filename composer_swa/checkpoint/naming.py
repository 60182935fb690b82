"""Checkpoint names as Composer writes them: format strings for the folder, the files and the ``latest`` link.

``save_folder="runs/{run_name}"``, ``save_filename="ep{epoch}-ba{batch}-rank{rank}.pt"`` and
``save_latest_filename="latest-rank{rank}.pt"`` are Composer's arguments and defaults. The same
format string that names a checkpoint also finds the run's checkpoints again (autoresume, keeping
the newest N): its time fields become numbers to match, and checkpoints are ordered by ``{batch}``,
which every file name must therefore hold.

One file holds every process's state and process 0 writes it, so ``{rank}``, ``{local_rank}`` and
``{node_rank}`` are the writer's, 0, on every process: all of them name, and later read, the same file.

Example:
    >>> naming = CheckpointNaming("ep{epoch}-ba{batch}-rank{rank}.pt", run_name="demo")
    >>> naming.name(epoch=2, batch=40, batch_in_epoch=0, sample=640, token=0)
    'ep2-ba40-rank0.pt'
    >>> naming.batch_of("ep2-ba40-rank0.pt"), naming.batch_of("latest-rank0.pt")
    (40, None)
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from pathlib import Path

from composer_swa.distributed.process_group import distributed_info

__all__ = ["DEFAULT_FILENAME", "DEFAULT_LATEST_FILENAME", "CheckpointNaming", "format_run_path"]

DEFAULT_FILENAME = "ep{epoch}-ba{batch}-rank{rank}.pt"
DEFAULT_LATEST_FILENAME = "latest-rank{rank}.pt"
#: The Timestamp counts a checkpoint's file name may hold (Composer's; its wall-clock and per-epoch
#: sample/token fields are not counted here).
TIME_FIELDS = ("epoch", "batch", "batch_in_epoch", "sample", "token")


def _run_fields(run_name: str | None) -> dict[str, object]:
    """The fields every path may use: the run's name and the writing process's (process 0's) place."""
    world_size = distributed_info().world_size
    fields: dict[str, object] = {"rank": 0, "local_rank": 0, "node_rank": 0, "world_size": world_size}
    fields["local_world_size"] = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    if run_name is not None:
        fields["run_name"] = run_name
    return fields


def _field_names(template: str, argument: str) -> list[str]:
    try:
        return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as error:
        raise ValueError(f"{argument}={template!r} is not a format string: {error}") from None


def _check_fields(template: str, argument: str, allowed: set[str], run_name: str | None) -> list[str]:
    fields = _field_names(template, argument)
    for field in fields:
        if field == "run_name" and run_name is None:
            raise ValueError(f"{argument}={template!r} holds {{run_name}}, but no run_name is known; pass run_name=...")
        if field not in allowed:
            raise ValueError(
                f"{argument}={template!r} holds {{{field}}}; a checkpoint path may use {', '.join(sorted(allowed))} "
                "(each in braces)"
            )
    return fields


def format_run_path(template: str | Path, run_name: str | None, argument: str = "save_folder") -> Path:
    """``template`` with ``{run_name}``, ``{rank}``, ``{world_size}``... filled in; any other field is refused.

    Example:
        >>> format_run_path("checkpoints/{run_name}", run_name="1714-brave-otter")
        PosixPath('checkpoints/1714-brave-otter')
    """
    text = str(template)
    _check_fields(text, argument, {"run_name", "rank", "local_rank", "node_rank", "world_size", "local_world_size"}, run_name)
    return Path(text.format(**_run_fields(run_name)))


@dataclass(frozen=True)
class CheckpointNaming:
    """How a run names its checkpoints and its ``latest`` link, and how it finds them again.

    Args:
        filename: A format string over the run fields and :data:`TIME_FIELDS`; it must hold ``{batch}``.
        latest_filename: A format string over the run fields for a symlink to the newest checkpoint;
            ``None`` makes no link.
        run_name: The run's name, for ``{run_name}``.

    Raises:
        ValueError: A field no checkpoint has, a name without ``{batch}``, or a name with a folder in it.

    Example:
        >>> CheckpointNaming("ep{epoch}.pt")
        Traceback (most recent call last):
        ...
        ValueError: save_filename='ep{epoch}.pt' must hold {batch}: checkpoints are told apart and ordered by their batch count
    """

    filename: str = DEFAULT_FILENAME
    latest_filename: str | None = DEFAULT_LATEST_FILENAME
    run_name: str | None = None

    def __post_init__(self) -> None:
        run_fields = set(_run_fields(None)) | {"run_name"}
        fields = _check_fields(self.filename, "save_filename", run_fields | set(TIME_FIELDS), self.run_name)
        if "batch" not in fields:
            raise ValueError(
                f"save_filename={self.filename!r} must hold {{batch}}: "
                "checkpoints are told apart and ordered by their batch count"
            )
        for argument, name in (("save_filename", self.filename), ("save_latest_filename", self.latest_filename)):
            if name is not None and ("/" in name or os.sep in name):
                raise ValueError(f"{argument}={name!r} names a file inside save_folder; put folders in save_folder")
        if self.latest_filename is not None:
            _check_fields(self.latest_filename, "save_latest_filename", run_fields, self.run_name)

    def name(self, epoch: int, batch: int, batch_in_epoch: int, sample: int, token: int) -> str:
        """The file name of the checkpoint at this point of the run."""
        times = {"epoch": epoch, "batch": batch, "batch_in_epoch": batch_in_epoch, "sample": sample, "token": token}
        return self.filename.format(**_run_fields(self.run_name), **times)

    def latest_name(self) -> str | None:
        """The ``latest`` link's file name, or ``None`` when the run makes none."""
        return None if self.latest_filename is None else self.latest_filename.format(**_run_fields(self.run_name))

    def batch_of(self, name: str) -> int | None:
        """The batch count of a checkpoint file named ``name``, or ``None`` when it is not one of this run's names."""
        match = self._pattern.match(name)
        return int(match["batch"]) if match else None

    @property
    def _pattern(self) -> re.Pattern[str]:
        values = _run_fields(self.run_name)
        parts, seen = [], set()
        for literal, field, _, _ in string.Formatter().parse(self.filename):
            parts.append(re.escape(literal))
            if field in TIME_FIELDS:
                parts.append(f"(?P<{field}>\\d+)" if field not in seen else f"(?P={field})")
                seen.add(field)
            elif field is not None:
                parts.append(re.escape(str(values[field])))
        return re.compile("^" + "".join(parts) + "$")

    def list(self, folder: Path) -> list[Path]:
        """The checkpoints in ``folder``, oldest first (by batch count); the ``latest`` link and other files are ignored."""
        if not folder.is_dir():
            return []
        latest = self.latest_name()
        named = [
            (batch, path) for path in folder.iterdir() if path.name != latest and (batch := self.batch_of(path.name)) is not None
        ]
        return [path for _, path in sorted(named)]

    def point_latest_at(self, folder: Path, checkpoint: Path) -> None:
        """Points the ``latest`` link at ``checkpoint`` (relative, so the folder can move), replacing it atomically."""
        name = self.latest_name()
        if name is None:
            return
        link = folder / name
        temporary = folder / f".{name}.{os.getpid()}.link"
        temporary.unlink(missing_ok=True)
        os.symlink(os.path.relpath(checkpoint, folder), temporary)
        os.replace(temporary, link)  # readers see the old link or the new one, never none

    def remove_latest(self, folder: Path) -> None:
        name = self.latest_name()
        if name is not None and (folder / name).is_symlink():
            (folder / name).unlink()
