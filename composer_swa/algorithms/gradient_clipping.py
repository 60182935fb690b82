"""Gradient clipping, after the batch's backward and before the optimizer step: by norm, by value, or adaptive (AGC)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

import torch

from composer_swa.algorithms.arguments import check_positive, is_number
from composer_swa.events import Algorithm, Event

if TYPE_CHECKING:
    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["GradientClipping", "apply_gradient_clipping"]

CLIPPING_TYPES = ("norm", "value", "adaptive")


class GradientClipping(Algorithm):
    """Clips the gradients of ``state.model`` once per optimizer step, at ``AFTER_TRAIN_BATCH``, as
    Composer's ``GradientClipping``.

    - ``"norm"``: the global L2 norm over all gradients is brought down to ``clipping_threshold``
      (``torch.nn.utils.clip_grad_norm_``): every gradient is scaled by ``min(1, threshold / norm)``.
    - ``"value"``: each gradient element is clamped to ``[-threshold, threshold]``.
    - ``"adaptive"``: Adaptive Gradient Clipping (Brock et al., "High-Performance Large-Scale Image
      Recognition Without Normalization", ICML 2021, https://arxiv.org/abs/2102.06171). Unit-wise:
      for each output unit ``i`` of a parameter (a row of a Linear weight, a filter of a convolution;
      the whole tensor for biases, gains and other 0-D or 1-D parameters), where
      ``‖G_i‖ > λ · max(‖W_i‖, eps)`` the unit's gradient is scaled to that norm, else left alone.
      The ``eps`` floor is the paper's: without it a zero-initialised bias would get zero gradients
      (and never move). Composer's version has no floor: ``eps=0`` is its rule exactly.

    Where it runs: in our Trainer after all microbatches (``grad_accum``) have added their gradients
    and, under DDP, after they are averaged across processes; under fp16 they are unscaled first, so
    the threshold applies to the true gradient. In a plain loop, call
    :meth:`AlgorithmRunner.after_train_batch() <composer_swa.integrations.AlgorithmRunner.after_train_batch>`
    after the backward (and ``scaler.unscale_``) and before ``optimizer.step()``. Lightning's
    ``on_before_optimizer_step`` drives it (gradients are unscaled there); in ``transformers.Trainer``
    use its own ``TrainingArguments(max_grad_norm=...)`` (``"norm"``): it has no hook where fp16
    gradients are always unscaled, so ``HuggingFaceCallback`` refuses this algorithm.

    It keeps no state; the arguments are stored in checkpoints, and a resumed run that changes them
    gets a warning.

    Args:
        clipping_type: ``"norm"`` (the default), ``"value"`` or ``"adaptive"``.
        clipping_threshold: The maximum global norm (``"norm"``; default 1.0, as ``transformers``'
            ``max_grad_norm``), absolute value (``"value"``), or ratio of gradient norm to weight norm
            ``λ`` (``"adaptive"``; the paper uses 0.01 to 0.16). Composer requires both arguments.
        eps: The floor of the weight norms in ``"adaptive"`` (the paper's 1e-3; 0 for Composer's rule); unused otherwise.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from composer_swa import Trainer
        >>> data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,))), batch_size=8)
        >>> clipping = GradientClipping(clipping_type="norm", clipping_threshold=1.0)
        >>> model = torch.nn.Linear(4, 2)
        >>> trainer = Trainer(model, data, max_duration="1ep", algorithms=[clipping], progress_bar=False, loggers=[])
        >>> trainer.fit()
    """

    events: ClassVar[frozenset[Event]] = frozenset({Event.AFTER_TRAIN_BATCH})
    stored_arguments: ClassVar[tuple[str, ...]] = ("clipping_type", "clipping_threshold", "eps")

    def __init__(self, clipping_type: str = "norm", clipping_threshold: float = 1.0, eps: float = 1e-3) -> None:
        if clipping_type not in CLIPPING_TYPES:
            raise ValueError(f"clipping_type must be one of {CLIPPING_TYPES}, got {clipping_type!r}")
        self.clipping_type = clipping_type
        self.clipping_threshold = check_positive(clipping_threshold, "clipping_threshold")
        self.eps = check_eps(eps)

    def match(self, event: Event, state: State) -> bool:
        return event is Event.AFTER_TRAIN_BATCH

    def apply(self, event: Event, state: State, logger: Logger) -> None:
        apply_gradient_clipping(state.model, self.clipping_type, self.clipping_threshold, eps=self.eps)


def check_eps(value: object) -> float:
    """The adaptive rule's weight-norm floor: a finite number >= 0."""
    if not is_number(value) or not value >= 0:  # type: ignore[operator]
        raise ValueError(f"eps must be a finite number >= 0 (0 is Composer's rule), got {value!r}")
    return float(value)  # type: ignore[arg-type]


def apply_gradient_clipping(
    model: torch.nn.Module | Iterable[torch.nn.Parameter],
    clipping_type: str,
    clipping_threshold: float,
    fsdp_enabled: bool = False,
    eps: float = 1e-3,
) -> None:
    """Clips the ``.grad`` of a model's parameters in place, as :class:`GradientClipping` does (Composer's function
    for a loop of your own; parameters without a gradient are skipped).

    Args:
        model: The model, or its parameters.
        clipping_type: ``"norm"``, ``"value"`` or ``"adaptive"``.
        clipping_threshold: As :class:`GradientClipping`'s.
        fsdp_enabled: Composer's switch to its FSDP1 code path, taken for the same call; the rules are the same here.
        eps: The adaptive rule's weight-norm floor.

    Example:
        >>> weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        >>> weight.grad = torch.tensor([7.0, 24.0])  # norm 25, weight norm 5: clipped to 0.5 * 5
        >>> apply_gradient_clipping([weight], "adaptive", 0.5)
        >>> weight.grad
        tensor([0.7000, 2.4000])
    """
    if clipping_type not in CLIPPING_TYPES:
        raise ValueError(f"clipping_type must be one of {CLIPPING_TYPES}, got {clipping_type!r}")
    threshold = check_positive(clipping_threshold, "clipping_threshold")
    parameters = model.parameters() if isinstance(model, torch.nn.Module) else model
    with_grads = [parameter for parameter in parameters if parameter.grad is not None]
    if clipping_type == "norm":
        torch.nn.utils.clip_grad_norm_(with_grads, max_norm=threshold)
    elif clipping_type == "value":
        torch.nn.utils.clip_grad_value_(with_grads, clip_value=threshold)
    else:
        _clip_adaptive(with_grads, threshold, check_eps(eps))


@torch.no_grad()
def _clip_adaptive(parameters: list[torch.nn.Parameter], threshold: float, eps: float) -> None:
    for parameter in parameters:
        grad = parameter.grad
        assert grad is not None
        max_norm = _unitwise_norm(parameter.float()).clamp_(min=eps).mul_(threshold)
        grad_norm = _unitwise_norm(grad.float())
        # grad_norm > max_norm >= 0 wherever the scale is used; a NaN norm compares False and is left alone.
        scale = torch.where(grad_norm > max_norm, max_norm / grad_norm, torch.ones_like(grad_norm))
        grad.mul_(scale.to(grad.dtype))


def _unitwise_norm(tensor: torch.Tensor) -> torch.Tensor:
    """L2 norm per output unit (over every dimension but the first), or of the whole tensor when it is 0-D or 1-D."""
    if tensor.ndim <= 1:
        return torch.linalg.vector_norm(tensor)
    return torch.linalg.vector_norm(tensor, dim=tuple(range(1, tensor.ndim)), keepdim=True)
