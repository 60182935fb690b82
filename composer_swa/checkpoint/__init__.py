"""Checkpoints: atomic, digest-checked, weights-only files; exact resume; preemption; safetensors export.

Example:
    >>> from composer_swa.checkpoint import Checkpointer
    >>> Checkpointer(save_folder="checkpoints", save_interval="50ba", save_num_checkpoints_to_keep=3).keep
    3
"""

from composer_swa.checkpoint.atomic import atomic_write, atomic_write_text, fsync_folder
from composer_swa.checkpoint.checkpointer import Checkpointer, skip_consumed_batches
from composer_swa.checkpoint.export import export_weights
from composer_swa.checkpoint.files import (
    CheckpointError,
    checkpoint_name,
    list_checkpoints,
    read_checkpoint,
    read_model_weights,
    write_checkpoint,
)
from composer_swa.checkpoint.preemption import PreemptionWatcher, TrainingPreempted
from composer_swa.checkpoint.rng import capture_rng, restore_rng

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "PreemptionWatcher",
    "TrainingPreempted",
    "atomic_write",
    "atomic_write_text",
    "capture_rng",
    "checkpoint_name",
    "export_weights",
    "fsync_folder",
    "list_checkpoints",
    "read_checkpoint",
    "read_model_weights",
    "restore_rng",
    "skip_consumed_batches",
    "write_checkpoint",
]
