"""Composer's schedulers page (docs/source/trainer/schedulers.rst), ported: only the imports changed.

Each snippet runs on small local data (tests.helpers.make_loader: 4 features, 3 classes) and checks
the LR each optimizer step uses. ``scale_schedule_ratio`` is a Trainer argument; its section is
checked here on the schedulers' own ``ssr`` argument, which is what the Trainer passes them.
The page's ``VariableEpochDecayScheduler`` has two slips (``__init__`` and ``__call__`` without
``self``, ``state.time``); it is ported with them fixed.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR

from composer_swa import State, Trainer
from composer_swa.optim.base import example_state
from composer_swa.optim.scheduler import ComposerScheduler, MultiStepScheduler, MultiStepWithWarmupScheduler
from tests.helpers import BatchStartLRs, make_loader, mlp, quiet

LR = 0.1


def setup(
    batches_per_epoch: int = 4,
) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader, BatchStartLRs]:
    model = mlp()
    return model, torch.optim.SGD(model.parameters(), lr=LR), make_loader(samples=16 * batches_per_epoch), BatchStartLRs()


def test_a_pytorch_scheduler_stepped_every_batch() -> None:
    model, optimizer, train_dataloader, seen = setup()
    trainer = Trainer(
        model=model, train_dataloader=train_dataloader, max_duration="2ep", optimizers=optimizer, callbacks=[seen], **quiet(),
        schedulers=CosineAnnealingLR(optimizer, T_max=2),
        step_schedulers_every_batch=True,
    )  # fmt: skip
    trainer.fit()
    reference_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    reference = CosineAnnealingLR(reference_optimizer, T_max=2)
    expected = []
    for _ in range(8):  # torch's own scheduler, stepped once per batch by hand
        expected.append(reference_optimizer.param_groups[0]["lr"])
        reference_optimizer.step()
        reference.step()
    assert seen.lrs == pytest.approx(expected)


def test_a_ported_cosine_annealing_lr_decays_once_an_epoch_by_default() -> None:
    """The issue's case: CosineAnnealingLR(opt, T_max=10) in a 10-epoch run is one half cosine, stepped per epoch."""
    model, optimizer, train_dataloader, seen = setup(batches_per_epoch=3)
    Trainer(model=model, train_dataloader=train_dataloader, max_duration="10ep", optimizers=optimizer,
            schedulers=CosineAnnealingLR(optimizer, T_max=10), callbacks=[seen], **quiet()).fit()  # fmt: skip
    expected = [LR * (1 + math.cos(math.pi * (k // 3) / 10)) / 2 for k in range(30)]
    assert seen.lrs == pytest.approx(expected, abs=1e-12)
    assert seen.lrs == sorted(seen.lrs, reverse=True)  # never back up towards 0.1


def test_multistep_scheduler_at_30_50_and_90_percent() -> None:
    model, optimizer, train_dataloader, seen = setup(batches_per_epoch=1)
    trainer = Trainer(
        model=model,
        train_dataloader=train_dataloader,
        max_duration='90ep',
        schedulers=MultiStepScheduler(
            milestones=['0.3dur', '0.5dur', '0.9dur'],
            gamma=0.1
        ), optimizers=optimizer, callbacks=[seen], **quiet())  # fmt: skip
    trainer.fit()
    expected = [LR * 0.1 ** ((k >= 27) + (k >= 45) + (k >= 81)) for k in range(90)]
    assert seen.lrs == pytest.approx(expected)


def ten_epoch_decay_scheduler(state: State) -> float:
    if state.timestamp.epoch < 10:
        return 1.0
    return 0.5


class VariableEpochDecayScheduler(ComposerScheduler):
    def __init__(self, num_epochs: int):
        self.num_epochs = num_epochs

    def __call__(self, state: State, ssr: float = 1.0) -> float:
        if state.timestamp.epoch < self.num_epochs:
            return 1.0
        return 0.5


@pytest.mark.parametrize("scheduler", [ten_epoch_decay_scheduler, VariableEpochDecayScheduler(num_epochs=10)])
def test_a_function_or_a_callable_class_is_a_composer_scheduler(scheduler: ComposerScheduler) -> None:
    model, optimizer, train_dataloader, seen = setup(batches_per_epoch=2)
    Trainer(model=model, train_dataloader=train_dataloader, max_duration="12ep", optimizers=optimizer,
            schedulers=[scheduler], callbacks=[seen], **quiet()).fit()  # fmt: skip
    assert seen.lrs == pytest.approx([LR] * 20 + [LR / 2] * 4)  # stepped per batch: epoch 10 starts at batch 20


def test_scale_schedule_ratio_halves_the_milestones() -> None:
    """``max_duration="20ep"`` with SSR 0.5 is a 10-epoch run whose milestones are at 5 and 8 epochs."""
    scheduler = MultiStepScheduler(milestones=["10ep", "16ep"])
    equivalent = MultiStepScheduler(milestones=["5ep", "8ep"])
    for epoch in range(11):
        state = example_state(epoch * 4, "10ep", batches_per_epoch=4)
        assert scheduler(state, ssr=0.5) == pytest.approx(equivalent(state)), epoch


@pytest.mark.parametrize(("scale_warmup", "warmup_epochs"), [(False, 4), (True, 2)])
def test_the_warmup_is_scaled_only_with_scale_warmup(scale_warmup: bool, warmup_epochs: int) -> None:
    scheduler = MultiStepWithWarmupScheduler(
        milestones=["10ep", "20ep"],
        t_warmup="4ep",
        scale_warmup=scale_warmup,
    )
    multipliers = [scheduler(example_state(epoch * 4, "15ep", batches_per_epoch=4), ssr=0.5) for epoch in range(12)]
    warmup = [epoch / warmup_epochs for epoch in range(warmup_epochs)]
    assert multipliers == pytest.approx(warmup + [1.0] * (5 - warmup_epochs) + [0.1] * 5 + [0.01] * 2)
