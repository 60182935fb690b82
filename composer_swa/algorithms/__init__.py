"""Algorithms: thin policies over the averaging kernel in :mod:`composer_swa.averaging`."""

from composer_swa.algorithms.swa import SWA

__all__ = ["SWA"]
