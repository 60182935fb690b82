"""One tiny run shared by the adapter tests: the model, the data, the optimizer, and our Trainer's result.

100 samples in batches of 16 make 7 optimizer steps per epoch with a short last batch (4 samples),
so the batch-norm pass is checked on uneven batches. Every framework sees the samples in order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa import SWA, Algorithm, Trainer

SAMPLES, BATCH_SIZE, EPOCHS = 100, 16, 3
STEPS_PER_EPOCH = 7
TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH


def swa() -> SWA:
    """Averages every 2 steps over the second half, annealing the LR to 0.01 while the user's schedule decays."""
    return SWA(swa_start="0.5dur", update_interval="2ba", schedule_swa_lr=True, swa_lr=0.01, anneal_steps=3)


class TinyNet(torch.nn.Module):
    """Linear → BatchNorm → ReLU → Linear; returns logits, or ``{"loss", "logits"}`` given labels (as HF models do)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        logits = self.body(x)
        if labels is None:
            return logits
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(SAMPLES, 6, generator=generator) * 2 + 1
    return inputs, (inputs[:, 0] + inputs[:, 1] > 2).long() + (inputs[:, 2] > 1).long()


def tuple_loader(batch_size: int = BATCH_SIZE) -> DataLoader[Any]:
    return DataLoader(TensorDataset(*data()), batch_size=batch_size)


def initial_model() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


def optimizer_and_schedule(model: torch.nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.95**step)


def our_trainer_run(make_algorithms: Callable[[], list[Algorithm]] = lambda: [swa()]) -> tuple[TinyNet, list[Algorithm]]:
    """The reference: the same run in composer_swa's own Trainer."""
    model = initial_model()
    optimizer, schedule = optimizer_and_schedule(model)
    algorithms = make_algorithms()
    trainer = Trainer(
        model,
        tuple_loader(),
        max_duration=f"{EPOCHS}ep",
        optimizers=optimizer,
        schedulers=schedule,
        step_schedulers_every_batch=True,  # the reference loops step it per batch
        algorithms=algorithms,
        loggers=[],
        progress_bar=False,
    )
    trainer.fit()
    return model, algorithms


def assert_same_weights(
    actual: torch.nn.Module | dict[str, torch.Tensor], expected: torch.nn.Module | dict[str, torch.Tensor]
) -> None:
    actual_state = actual.state_dict() if isinstance(actual, torch.nn.Module) else actual
    expected_state = expected.state_dict() if isinstance(expected, torch.nn.Module) else expected
    assert actual_state.keys() == expected_state.keys()
    for name, tensor in expected_state.items():
        torch.testing.assert_close(actual_state[name].float(), tensor.float(), rtol=1e-5, atol=1e-6, msg=name)


def assert_batch_norm_recomputed(model: TinyNet) -> None:
    """running_mean/var equal NumPy's mean and unbiased variance of the BN input over all 100 samples."""
    inputs, _ = data()
    first_layer = copy.deepcopy(model.body[0]).double()
    with torch.no_grad():
        activations = first_layer(inputs.double()).numpy()
    norm = model.body[1]
    np.testing.assert_allclose(norm.running_mean.numpy(), activations.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.running_var.numpy(), activations.var(axis=0, ddof=1), rtol=1e-5, atol=1e-6)
