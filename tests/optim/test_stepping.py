"""How the Trainer steps schedulers: Composer's rule, SWA's LR ownership, and checkpoints of a compiled scheduler.

The recorded LR is the one each optimizer step uses, by the 0-based batch it trains (read at BATCH_START).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pytest
import torch

from composer_swa import SWA, State, Trainer
from composer_swa.optim import CosineAnnealingScheduler, ExponentialScheduler, LinearScheduler, compile_composer_scheduler
from tests.helpers import BatchStartLRs, make_loader, mlp, quiet

LR = 0.1


def lrs_of(max_duration: str, make_scheduler: Callable[[torch.optim.Optimizer], object], **arguments: object) -> list[float]:
    """4 batches an epoch (64 samples of 16)."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    seen = BatchStartLRs()
    Trainer(model, make_loader(), max_duration, optimizers=optimizer, schedulers=make_scheduler(optimizer), callbacks=[seen],
            **quiet(**arguments)).fit()  # fmt: skip
    return seen.lrs


def step_lr(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.StepLR:
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)


def test_a_composer_scheduler_steps_every_batch_by_default() -> None:
    assert lrs_of("2ep", lambda _: LinearScheduler()) == pytest.approx([LR * (1 - k / 8) for k in range(8)])


def test_a_pytorch_scheduler_steps_every_epoch_by_default() -> None:
    assert lrs_of("3ep", step_lr) == pytest.approx([LR * 0.5 ** (k // 4) for k in range(12)])


def test_step_schedulers_every_batch_true_steps_a_pytorch_scheduler_every_batch() -> None:
    assert lrs_of("2ep", step_lr, step_schedulers_every_batch=True) == pytest.approx([LR * 0.5**k for k in range(8)])


def test_step_schedulers_every_batch_false_steps_a_composer_scheduler_every_epoch() -> None:
    lrs = lrs_of("2ep", lambda _: LinearScheduler(), step_schedulers_every_batch=False)
    assert lrs == pytest.approx([LR * (1 - 4 * (k // 4) / 8) for k in range(8)])


def test_a_composer_scheduler_pauses_while_swa_owns_the_lr() -> None:
    """As test_swa's StepLR run, but the schedule is a function of time: after swa_end it is at alpha(now)."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    seen = BatchStartLRs()
    swa = SWA(swa_start="2ba", swa_end="6ba", update_interval="1ba", schedule_swa_lr=True)
    Trainer(model, make_loader(), "8ba", optimizers=optimizer, schedulers=ExponentialScheduler(gamma=0.5, decay_period="1ba"),
            algorithms=[swa], callbacks=[seen], **quiet()).fit()  # fmt: skip
    assert seen.lrs == pytest.approx([1.0, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.5**7])


def test_a_compiled_scheduler_checkpoints_and_resumes_its_lr() -> None:
    def state() -> State:
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        return State(model, "2ep", make_loader(), optimizers=[optimizer], schedulers=[LinearScheduler(alpha_f=0.5)])

    first = state()
    for _ in range(3):
        first.optimizers[0].step()
        first.timestamp.advance_batch(samples=16, tokens=0)
        first.schedulers[0].step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = state()
    second.load_state_dict(torch.load(buffer, weights_only=True))
    assert second.optimizers[0].param_groups[0]["lr"] == pytest.approx(LR * (1 - 0.5 * 3 / 8))
    second.timestamp.advance_batch(samples=16, tokens=0)
    second.schedulers[0].step()
    assert second.optimizers[0].param_groups[0]["lr"] == pytest.approx(LR * (1 - 0.5 * 4 / 8))


def test_compiling_refuses_what_composer_refuses() -> None:
    model = mlp()
    two = [torch.optim.SGD(model.parameters(), lr=LR), torch.optim.Adam(model.parameters())]
    with pytest.raises(ValueError, match="exactly one optimizer; this run has 2"):
        State(model, "1ep", make_loader(), optimizers=two, schedulers=[LinearScheduler()])
    state = State(model, "1ep", make_loader(), optimizers=two[:1])
    with pytest.raises(ValueError, match=r"takes only \(state\).*ssr=2\.0"):
        compile_composer_scheduler(lambda state: 1.0, state, ssr=2.0)
    with pytest.raises(TypeError, match=r"schedulers\[0\] must be a torch.optim.lr_scheduler object or a ComposerScheduler"):
        State(model, "1ep", make_loader(), optimizers=two[:1], schedulers=["cosine"])


def test_a_cosine_over_the_run_gives_every_batch_the_lr_the_examples_trained_with() -> None:
    """The examples' old ``warmup_cosine`` with no warm-up, (1 + cos(pi * k / T)) / 2 at batch k: unchanged."""
    lrs = lrs_of("3ep", lambda _: CosineAnnealingScheduler())
    assert lrs == pytest.approx([LR * (1 + math.cos(math.pi * k / 12)) / 2 for k in range(12)], abs=1e-15)
