"""Algorithms: thin policies over the averaging kernel in :mod:`composer_swa.averaging`."""

from composer_swa.algorithms.ema import EMA
from composer_swa.algorithms.gradient_clipping import GradientClipping
from composer_swa.algorithms.lawa import LAWA
from composer_swa.algorithms.posthoc_ema import PostHocEMA
from composer_swa.algorithms.swa import SWA
from composer_swa.algorithms.swag import SWAG
from composer_swa.algorithms.swats import SWATS

__all__ = ["EMA", "LAWA", "SWA", "SWAG", "SWATS", "GradientClipping", "PostHocEMA"]
