"""What a run's checkpointing is asked to do: one checked, immutable value built from the Trainer's arguments.

The Trainer takes these settings as flat keyword arguments (as Composer's does); they are checked and
gathered here once, and the :class:`~composer_swa.checkpoint.Checkpointer` and the config schema both
take this one object instead of repeating the arguments.

Example:
    >>> options = CheckpointOptions.from_arguments(save_folder="checkpoints/{run_name}", save_interval="50ba", run_name="demo")
    >>> options.save_folder, options.save_interval, options.naming.filename
    (PosixPath('checkpoints/demo'), Time(50, 'ba'), 'ep{epoch}-ba{batch}-rank{rank}.pt')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from composer_swa.checkpoint.naming import DEFAULT_FILENAME, DEFAULT_LATEST_FILENAME, CheckpointNaming, format_run_path
from composer_swa.schedule import Schedule, interval_or_off
from composer_swa.time import Time, TimeUnit

__all__ = ["CheckpointOptions"]


@dataclass(frozen=True)
class CheckpointOptions:
    """When to save checkpoints, how they are named, how many to keep, and what a run starts from; checked when built.

    Args:
        save_folder: Folder for checkpoints (``{run_name}`` and the like already filled in); ``None`` saves nothing.
        save_interval: How often: ``"1ep"``, ``"50ba"``, ``"0.1dur"``...; ``None`` (the Trainer's ``0``)
            saves no periodic checkpoint and none at the end of training. A checkpoint is also written
            when SIGTERM/SIGINT arrives.
        save_num_checkpoints_to_keep: How many of the newest to keep; ``-1`` keeps all.
        autoresume: Resume from the newest valid checkpoint in ``save_folder`` when there is one.
        load_path: A checkpoint to start from (ignored when ``autoresume`` finds one).
        load_weights_only: Take only the model weights from ``load_path`` (also ``.safetensors``).
        naming: The checkpoints' file names and the ``latest`` link.
        save_overwrite: Let a new run replace the checkpoints ``save_folder`` holds (else it refuses to start).

    Raises:
        ValueError: A setting out of range, or one that needs another (``autoresume`` a ``save_folder``).
        FileNotFoundError: ``load_path`` is not a file.

    Example:
        >>> CheckpointOptions(save_num_checkpoints_to_keep=0)
        Traceback (most recent call last):
        ...
        ValueError: save_num_checkpoints_to_keep must be -1 (keep all) or a count >= 1, got 0
    """

    save_folder: Path | None = None
    save_interval: Time | None = field(default_factory=lambda: Time(1, TimeUnit.EPOCH))
    save_num_checkpoints_to_keep: int = -1
    autoresume: bool = False
    load_path: Path | None = None
    load_weights_only: bool = False
    naming: CheckpointNaming = field(default_factory=CheckpointNaming)
    save_overwrite: bool = False

    def __post_init__(self) -> None:
        if self.save_interval is not None:
            Schedule(self.save_interval, argument="save_interval")  # its one check of an interval
        keep = self.save_num_checkpoints_to_keep
        if isinstance(keep, bool) or not isinstance(keep, int) or not (keep == -1 or keep >= 1):
            raise ValueError(f"save_num_checkpoints_to_keep must be -1 (keep all) or a count >= 1, got {keep!r}")
        if self.autoresume and self.save_folder is None:
            raise ValueError("autoresume=True needs a save_folder to look for checkpoints in; pass save_folder=...")
        if self.load_path is not None and not self.load_path.is_file():
            raise FileNotFoundError(f"load_path {str(self.load_path)!r} does not exist; check the path")
        if self.load_weights_only and self.load_path is None:
            raise ValueError("load_weights_only=True needs a load_path to take the weights from")

    @classmethod
    def from_arguments(
        cls,
        save_folder: str | Path | None = None,
        save_interval: Time | str | int = "1ep",
        save_num_checkpoints_to_keep: int = -1,
        autoresume: bool = False,
        load_path: str | Path | None = None,
        load_weights_only: bool = False,
        save_filename: str = DEFAULT_FILENAME,
        save_latest_filename: str | None = DEFAULT_LATEST_FILENAME,
        save_overwrite: bool = False,
        run_name: str | None = None,
    ) -> CheckpointOptions:
        """The options from the Trainer's arguments as a user or a config writes them (Composer's forms).

        An int ``save_interval`` counts epochs and ``0`` saves no checkpoints on a schedule; ``run_name``
        fills ``{run_name}`` in ``save_folder``, ``save_filename`` and ``save_latest_filename``.
        """
        return cls(
            format_run_path(save_folder, run_name) if save_folder is not None else None,
            interval_or_off(save_interval, "save_interval"),
            save_num_checkpoints_to_keep,
            autoresume,
            Path(load_path) if load_path is not None else None,
            load_weights_only,
            CheckpointNaming(save_filename, save_latest_filename, run_name),
            save_overwrite,
        )
