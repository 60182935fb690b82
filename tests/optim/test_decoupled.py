"""Composer's decoupled optimizers against a NumPy step written from the paper's update and Composer's scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from composer_swa.optim import DecoupledAdamW, DecoupledSGDW


def _steps(optimizer_class: type, lrs: list[float], **kwargs: float) -> tuple[np.ndarray, list[np.ndarray]]:
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    start = weight.detach().numpy().copy()
    optimizer = optimizer_class([weight], lr=lrs[0], **kwargs)
    grads = [np.random.default_rng(step).standard_normal(5) for step in range(len(lrs))]
    for lr, grad in zip(lrs, grads, strict=True):
        optimizer.param_groups[0]["lr"] = lr  # as a scheduler would set it
        weight.grad = torch.from_numpy(grad.copy())
        optimizer.step()
    return start, [weight.detach().numpy().copy(), *grads]


def test_sgdw_decays_by_the_lr_ratio_then_steps_with_momentum() -> None:
    lrs, momentum, weight_decay = [0.1, 0.05, 0.025], 0.9, 0.01
    start, (final, *grads) = _steps(DecoupledSGDW, lrs, momentum=momentum, weight_decay=weight_decay)
    expected, buffer = start.copy(), None
    for lr, grad in zip(lrs, grads, strict=True):
        buffer = grad.copy() if buffer is None else momentum * buffer + grad
        expected = expected * (1 - lr / lrs[0] * weight_decay) - lr * buffer
    np.testing.assert_allclose(final, expected, rtol=1e-12)


def test_adamw_decays_by_the_lr_ratio_then_takes_adams_step() -> None:
    lrs, (beta1, beta2), eps, weight_decay = [1e-2, 5e-3, 1e-3], (0.9, 0.95), 1e-8, 0.1
    start, (final, *grads) = _steps(DecoupledAdamW, lrs, weight_decay=weight_decay)
    expected, m, v = start.copy(), np.zeros(5), np.zeros(5)
    for step, (lr, grad) in enumerate(zip(lrs, grads, strict=True), start=1):
        expected = expected * (1 - lr / lrs[0] * weight_decay)
        m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad**2
        m_hat, v_hat = m / (1 - beta1**step), v / (1 - beta2**step)
        expected = expected - lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(final, expected, rtol=1e-10)


def test_a_negative_weight_decay_is_refused() -> None:
    with pytest.raises(ValueError, match=r"weight_decay must be >= 0, got -0.1"):
        DecoupledSGDW([torch.nn.Parameter(torch.ones(1))], lr=0.1, weight_decay=-0.1)
