"""SWA's LR at swa_end: restored only when training goes on past it, as a callback at BATCH_END reads it."""

from __future__ import annotations

import pytest
import torch

from composer_swa import SWA, Callback, State, Trainer
from composer_swa.loggers import Logger
from tests.helpers import make_loader, mlp, quiet


class BatchEndLR(Callback):
    """The LR the optimizer holds at each BATCH_END (what the Trainer logs as ``train/lr``), by batch count."""

    def __init__(self) -> None:
        self.lrs: dict[int, float] = {}

    def batch_end(self, state: State, logger: Logger) -> None:
        self.lrs[state.timestamp.batch_count] = state.optimizers[0].param_groups[0]["lr"]


def run(swa_end: str) -> dict[int, float]:
    """12 batches, LambdaLR 0.9**step, SWA from batch 6 annealing linearly to 0.05 over 2 steps."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.9**step)
    swa = SWA(swa_start="6ba", swa_end=swa_end, update_interval="1ba", schedule_swa_lr=True, swa_lr=0.05, anneal_steps=2)
    seen = BatchEndLR()
    loader = make_loader(samples=48)  # 3 batches an epoch
    Trainer(
        model,
        loader,
        "12ba",
        optimizers=optimizer,
        schedulers=scheduler,
        algorithms=[swa],
        callbacks=[seen],
        step_schedulers_every_batch=True,
        **quiet(),
    ).fit()
    return seen.lrs


def expected_window(start: int, end: int) -> dict[int, float]:
    """Batches 1..start: the scheduler has stepped k times; then SWA anneals from 0.9**start to 0.05."""
    lrs = {k: 0.9**k for k in range(1, start + 1)}
    start_lr = 0.9**start
    for k in range(start + 1, end + 1):
        progress = min((k - start) / 2, 1.0)
        lrs[k] = start_lr + (0.05 - start_lr) * progress
    return lrs


def test_swa_end_at_the_end_of_the_run_keeps_the_last_batchs_lr() -> None:
    lrs = run("1.0dur")
    assert lrs == pytest.approx(expected_window(6, 12))
    assert lrs[12] == pytest.approx(0.05)  # not the 0.9**6 found at swa_start


def test_an_early_swa_end_restores_the_lr_and_the_schedule_resumes_where_it_paused() -> None:
    lrs = run("9ba")
    expected = expected_window(6, 8)
    expected[9] = 0.9**6  # restored after the swap at batch 9
    expected.update({k: 0.9 ** (k - 3) for k in range(10, 13)})  # the scheduler paused for 3 steps
    assert lrs == pytest.approx(expected)
