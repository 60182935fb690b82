"""The Trainer: our own training loop over the event engine."""

from composer_swa.trainer.trainer import Trainer

__all__ = ["Trainer"]
