"""The built-in components a config names: ``name: mnist1d``, ``name: adamw``, ``name: swa``..."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

from composer_swa.algorithms import EMA, LAWA, SWA, SWAG, SWATS, GradientClipping, PostHocEMA
from composer_swa.batch_resolver import BatchResolver
from composer_swa.data.char_text import char_text  # the modules', not the package's: see below
from composer_swa.data.fashion_mnist import fashion_mnist
from composer_swa.data.mnist1d import mnist1d
from composer_swa.data.synthetic import synthetic_classification
from composer_swa.loggers import ConsoleLogger, JSONLinesLogger, TensorBoardLogger
from composer_swa.models import MLP, CharGPT, FashionCNN, MNIST1DConvNet
from composer_swa.time import Time, TimeUnit, as_time

# The datasets come from their modules because a module named like its function (char_text) replaces
# the function as composer_swa.data's attribute whenever it is imported anew (pytest's doctests do).

__all__ = ["ALGORITHMS", "DATASETS", "LOGGERS", "MODELS", "OPTIMIZERS", "SCHEDULERS", "warmup_cosine"]


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_batches: int, warmup: Time | str = "0.05dur", final_factor: float = 0.0
) -> Any:
    """Linear warm-up from 0 over ``warmup``, then cosine decay to ``final_factor`` × the base LR (per batch).

    ``total_batches`` is the run's length, filled in by the builder; ``warmup`` resolves against it
    as every time does (``"0.07dur"`` of 100 batches is 7, exactly).

    Example:
        >>> model = torch.nn.Linear(1, 1)
        >>> scheduler = warmup_cosine(torch.optim.SGD(model.parameters(), lr=1.0), total_batches=100, warmup="0.07dur")
        >>> [round(scheduler.lr_lambdas[0](step), 3) for step in (0, 6, 7, 100)]
        [0.143, 1.0, 1.0, 0.0]
    """
    warmup_time = as_time(warmup, "warmup")
    if warmup_time.unit not in (TimeUnit.BATCH, TimeUnit.DURATION):
        raise ValueError(f"warmup must be in 'ba' or 'dur', got {str(warmup_time)!r}")
    warmup_batches = BatchResolver(max_duration=Time(total_batches, TimeUnit.BATCH)).to_batches(warmup_time)
    if not 0 <= final_factor <= 1:
        raise ValueError(f"final_factor must lie in [0, 1], got {final_factor!r}")

    def factor(step: int) -> float:
        if step < warmup_batches:
            return (step + 1) / warmup_batches
        progress = min(1.0, (step - warmup_batches) / max(1, total_batches - warmup_batches))
        return final_factor + (1 - final_factor) * (1 + math.cos(math.pi * progress)) / 2

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
# Schedulers whose arguments are functions or other schedulers cannot come from YAML.
SCHEDULERS = _subclasses(
    torch.optim.lr_scheduler,
    torch.optim.lr_scheduler.LRScheduler,
    {"LambdaLR", "MultiplicativeLR", "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau"},
) | {"warmup_cosine": warmup_cosine}
ALGORITHMS: dict[str, Callable[..., Any]] = {
    "swa": SWA, "ema": EMA, "lawa": LAWA, "swats": SWATS, "gradient_clipping": GradientClipping,
    "posthoc_ema": PostHocEMA,
    "swag": SWAG,
}  # fmt: skip
LOGGERS: dict[str, Callable[..., Any]] = {"console": ConsoleLogger, "jsonl": JSONLinesLogger, "tensorboard": TensorBoardLogger}
