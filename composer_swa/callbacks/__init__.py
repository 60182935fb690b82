"""Callbacks shipped with composer_swa, under Composer's ``composer.callbacks`` path."""

from composer_swa.callbacks.lr_monitor import LRMonitor

__all__ = ["LRMonitor"]
