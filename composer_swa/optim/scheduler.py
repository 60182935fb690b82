"""Composer's ``composer.optim.scheduler`` path: the schedulers and the protocol of :mod:`composer_swa.optim`.

Example:
    >>> from composer_swa.optim.scheduler import MultiStepScheduler
    >>> scheduler = MultiStepScheduler(milestones=["0.3dur", "0.5dur", "0.9dur"], gamma=0.1)
"""

from __future__ import annotations

from composer_swa.optim import *  # noqa: F403  (one list of names, kept in composer_swa/optim/__init__.py)
from composer_swa.optim import __all__  # noqa: F401
