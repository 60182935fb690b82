"""Checkpoints: atomic, digest-checked, weights-only files; exact resume; preemption; safetensors export.

Example:
    >>> from composer_swa.checkpoint import Checkpointer, CheckpointOptions
    >>> Checkpointer(CheckpointOptions.from_arguments(save_folder="checkpoints", save_interval="2ep")).options.save_interval
    Time(2, 'ep')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from composer_swa._lazy import lazy_attributes

if TYPE_CHECKING:
    from composer_swa.checkpoint.checkpointer import Checkpointer, skip_consumed_batches
    from composer_swa.checkpoint.export import export_weights
    from composer_swa.checkpoint.files import (
        CheckpointError,
        list_checkpoints,
        read_checkpoint,
        read_model_weights,
        write_checkpoint,
    )
    from composer_swa.checkpoint.naming import CheckpointNaming
    from composer_swa.checkpoint.options import CheckpointOptions
    from composer_swa.checkpoint.preemption import PreemptionWatcher, TrainingPreempted
    from composer_swa.checkpoint.rng import capture_rng, restore_rng

__all__ = [
    "CheckpointError",
    "CheckpointNaming",
    "CheckpointOptions",
    "Checkpointer",
    "PreemptionWatcher",
    "TrainingPreempted",
    "capture_rng",
    "export_weights",
    "list_checkpoints",
    "read_checkpoint",
    "read_model_weights",
    "restore_rng",
    "skip_consumed_batches",
    "write_checkpoint",
]

# Loaded on first use: swa-average reads safetensors digests without importing torch.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "CheckpointError": "composer_swa.checkpoint.files",
        "CheckpointNaming": "composer_swa.checkpoint.naming",
        "CheckpointOptions": "composer_swa.checkpoint.options",
        "Checkpointer": "composer_swa.checkpoint.checkpointer",
        "PreemptionWatcher": "composer_swa.checkpoint.preemption",
        "TrainingPreempted": "composer_swa.checkpoint.preemption",
        "capture_rng": "composer_swa.checkpoint.rng",
        "export_weights": "composer_swa.checkpoint.export",
        "list_checkpoints": "composer_swa.checkpoint.files",
        "read_checkpoint": "composer_swa.checkpoint.files",
        "read_model_weights": "composer_swa.checkpoint.files",
        "restore_rng": "composer_swa.checkpoint.rng",
        "skip_consumed_batches": "composer_swa.checkpoint.checkpointer",
        "write_checkpoint": "composer_swa.checkpoint.files",
    },
)
