"""Loss functions Composer's models use by default (``composer.loss``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["soft_cross_entropy"]


def soft_cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy for class indices or class probabilities (one-hot, mixed, smoothed labels).

    ``target`` of ``input``'s shape holds probabilities over dimension 1; one dimension fewer holds
    indices (then it is :func:`torch.nn.functional.cross_entropy`). With probabilities and
    ``reduction="mean"``, the sum is divided by the total probability, so rows summing to 0 are ignored.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        >>> indices, one_hot = torch.tensor([0, 1]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> torch.allclose(soft_cross_entropy(logits, indices), soft_cross_entropy(logits, one_hot))
        True
    """
    if input.shape == target.shape:
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        per_class = -(target * F.log_softmax(input, dim=1))
        if weight is not None:
            per_class = torch.movedim(torch.movedim(per_class, 1, -1) * weight, -1, 1)
        losses = per_class.sum(dim=1)
        if reduction == "none":
            return losses
        if reduction == "sum":
            return losses.sum()
        total = target.sum()
        if total <= 0:
            raise ValueError("soft_cross_entropy: every target row has zero probability")
        return losses.sum() / total
    if input.dim() == target.dim() + 1:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    raise ValueError(
        f"soft_cross_entropy: target of shape {tuple(target.shape)} fits neither input {tuple(input.shape)} "
        "(probabilities: the same shape) nor its class indices (one dimension fewer)"
    )
