"""Learning-rate schedulers, at Composer's import path (``composer.optim`` -> ``composer_swa.optim``).

Composer's schedulers are stateless functions of the run's time that return an LR multiplier; their
time arguments take any unit (``t_warmup="1ep"``, ``milestones=["0.3dur", "0.6dur"]``). The Trainer
compiles them into a LambdaLR stepped after every batch; they pause while an algorithm owns the LR,
as PyTorch schedulers do. In YAML each is a scheduler by its lower-case class name:
``scheduler: {name: cosineannealingwithwarmupscheduler, t_warmup: 1ep}``.

Example:
    >>> from composer_swa.optim import CosineAnnealingWithWarmupScheduler
    >>> scheduler = CosineAnnealingWithWarmupScheduler(t_warmup="1ep", alpha_f=0.1)
"""

from __future__ import annotations

from composer_swa.optim.base import ComposerScheduler, compile_composer_scheduler
from composer_swa.optim.decay import (
    ConstantScheduler,
    CosineAnnealingScheduler,
    CosineAnnealingWarmRestartsScheduler,
    ExponentialScheduler,
    LinearScheduler,
    MultiStepScheduler,
    PolynomialScheduler,
    StepScheduler,
)
from composer_swa.optim.decoupled import DecoupledAdamW, DecoupledSGDW
from composer_swa.optim.warmup import (
    ConstantWithWarmupScheduler,
    CosineAnnealingWithWarmupScheduler,
    LinearWithWarmupScheduler,
    MultiStepWithWarmupScheduler,
    PolynomialWithWarmupScheduler,
)

__all__ = [
    "ComposerScheduler",
    "ConstantScheduler",
    "ConstantWithWarmupScheduler",
    "CosineAnnealingScheduler",
    "CosineAnnealingWarmRestartsScheduler",
    "CosineAnnealingWithWarmupScheduler",
    "DecoupledAdamW",
    "DecoupledSGDW",
    "ExponentialScheduler",
    "LinearScheduler",
    "LinearWithWarmupScheduler",
    "MultiStepScheduler",
    "MultiStepWithWarmupScheduler",
    "PolynomialScheduler",
    "PolynomialWithWarmupScheduler",
    "StepScheduler",
    "compile_composer_scheduler",
]
