"""The built-in components a config names: ``name: mnist1d``, ``name: adamw``, ``name: swa``..."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from composer_swa.algorithms import EMA, LAWA, SWA, SWAG, SWATS, GradientClipping, PostHocEMA
from composer_swa.data.char_text import char_text  # the modules', not the package's: see below
from composer_swa.data.fashion_mnist import fashion_mnist
from composer_swa.data.mnist1d import mnist1d
from composer_swa.data.synthetic import synthetic_classification
from composer_swa.loggers import ConsoleLogger, JSONLinesLogger, TensorBoardLogger
from composer_swa.models import MLP, CharGPT, FashionCNN, MNIST1DConvNet
from composer_swa.optim import scheduler as composer_schedulers

# The datasets come from their modules because a module named like its function (char_text) replaces
# the function as composer_swa.data's attribute whenever it is imported anew (pytest's doctests do).

__all__ = ["ALGORITHMS", "DATASETS", "LOGGERS", "MODELS", "OPTIMIZERS", "SCHEDULERS"]


def _subclasses(namespace: Any, base: type, exclude: set[str]) -> dict[str, Callable[..., Any]]:
    return {
        name.lower(): value
        for name, value in vars(namespace).items()
        if inspect.isclass(value)
        and issubclass(value, base)
        and value is not base
        and name not in exclude
        and not name.startswith("_")
    }


DATASETS: dict[str, Callable[..., Any]] = {
    "synthetic": synthetic_classification,
    "mnist1d": mnist1d,
    "char_text": char_text,
    "fashion_mnist": fashion_mnist,
}
MODELS: dict[str, Callable[..., Any]] = {
    "mlp": MLP,
    "mnist1d_cnn": MNIST1DConvNet,
    "char_gpt": CharGPT,
    "fashion_cnn": FashionCNN,
}
OPTIMIZERS = _subclasses(torch.optim, torch.optim.Optimizer, set())
# Schedulers whose arguments are functions or other schedulers cannot come from YAML. Composer's
# (cosineannealingwithwarmupscheduler, ...) take no optimizer: the run's State compiles them.
SCHEDULERS = _subclasses(
    torch.optim.lr_scheduler,
    torch.optim.lr_scheduler.LRScheduler,
    {"LambdaLR", "MultiplicativeLR", "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau"},
) | {
    name.lower(): getattr(composer_schedulers, name)
    for name in composer_schedulers.__all__
    if name.endswith("Scheduler") and name != "ComposerScheduler"
}
ALGORITHMS: dict[str, Callable[..., Any]] = {
    "swa": SWA, "ema": EMA, "lawa": LAWA, "swats": SWATS, "gradient_clipping": GradientClipping,
    "posthoc_ema": PostHocEMA,
    "swag": SWAG,
}  # fmt: skip
LOGGERS: dict[str, Callable[..., Any]] = {"console": ConsoleLogger, "jsonl": JSONLinesLogger, "tensorboard": TensorBoardLogger}
