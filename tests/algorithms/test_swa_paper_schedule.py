"""SWA's schedule_swa_lr="paper": the LR of every batch against Izmailov et al.'s formula, and an exact resume mid-decay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from composer_swa import SWA, Callback, State, Trainer
from composer_swa.loggers import Logger
from tests.checkpoint.resume_run import build, final_weights
from tests.helpers import Crash, make_loader, mlp, quiet


class LRs(Callback):
    """The LR of each param group used by each batch, read at its BATCH_END."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def batch_end(self, state: State, logger: Logger) -> None:
        self.lrs.append([group["lr"] for group in state.optimizers[0].param_groups])


def paper_lr(lr_init: float, swa_lr: float, epoch: np.ndarray, swa_start: float) -> np.ndarray:
    """timgaripov/swa's learning_rate_schedule, written over an array of (batch) counts."""
    t = epoch / swa_start
    ratio = swa_lr / lr_init
    factor = np.where(t <= 0.5, 1.0, np.where(t <= 0.9, 1.0 - (1.0 - ratio) * (t - 0.5) / 0.4, ratio))
    return lr_init * factor


def test_every_batch_uses_the_papers_lr_for_each_param_group_and_schedulers_do_not_step() -> None:
    model = mlp()
    first, last = list(model.parameters())[:2], list(model.parameters())[2:]
    optimizer = torch.optim.SGD([{"params": first, "lr": 0.1}, {"params": last, "lr": 0.04}], momentum=0.9)
    recorded = LRs()
    swa = SWA(swa_start="6ba", update_interval="1ba", schedule_swa_lr="paper", swa_lr=[0.02, 0.01])
    trainer = Trainer(
        model, make_loader(samples=40, batch_size=4), "8ba", optimizers=optimizer,
        schedulers=torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5),  # would halve it every batch
        algorithms=[swa], callbacks=[recorded], step_schedulers_every_batch=True, **quiet(),
    )  # fmt: skip
    trainer.fit()
    counts = np.arange(8)  # batches done before each batch
    expected = np.stack([paper_lr(0.1, 0.02, counts, 6.0), paper_lr(0.04, 0.01, counts, 6.0)], axis=1)
    np.testing.assert_allclose(np.array(recorded.lrs), expected, rtol=1e-12)
    assert len({round(lr, 12) for lr, _ in recorded.lrs}) == 4  # held, two decay steps (t = 4/6, 5/6), then swa_lr


def test_exact_resume_mid_decay_after_a_crash(tmp_path: Path) -> None:
    reference = build(tmp_path / "reference", "swa-paper")
    recorded = LRs()
    reference.state.callbacks.append(recorded)
    reference.engine.refresh()
    reference.fit()
    lrs = np.array([group[0] for group in recorded.lrs])
    # The last checkpoint before the crash (batch 15) is mid-decay: batches 13 to 21 use LRs between 0.05 and 0.01.
    assert lrs[12] == 0.05 and 0.011 < lrs[15] < 0.049 and lrs[22] == pytest.approx(0.01)

    with pytest.raises(RuntimeError, match="killed"):
        build(tmp_path / "run", "swa-paper", callbacks=[Crash(18)]).fit()
    assert sorted(path.name for path in (tmp_path / "run").glob("ep*.pt"))[-1] == "ep1-ba15-rank0.pt"
    resumed = build(tmp_path / "run", "swa-paper", autoresume=True)
    resumed.fit()
    assert resumed.state.algorithms[0].n_averaged == reference.state.algorithms[0].n_averaged
    for name, tensor in final_weights(reference).items():
        assert torch.equal(final_weights(resumed)[name], tensor), name


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"schedule_swa_lr": "paper"}, r"schedule_swa_lr='paper' decays the LR to swa_lr before swa_start; give swa_lr"),
        ({"schedule_swa_lr": "Paper", "swa_lr": 0.1}, r"schedule_swa_lr must be True, False or 'paper', got 'Paper'"),
        ({"schedule_swa_lr": "paper", "swa_lr": 0.1, "cyclic_lr": (0.1, 0.01)}, "cyclic_lr and schedule_swa_lr"),
    ],
)
def test_bad_arguments_are_named(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SWA(**arguments)  # type: ignore[arg-type]


def test_a_window_from_batch_0_leaves_no_run_to_decay_over() -> None:
    swa = SWA(swa_start="0.0dur", update_interval="1ba", schedule_swa_lr="paper", swa_lr=0.01)
    trainer = Trainer(mlp(), make_loader(), "4ba", algorithms=[swa], **quiet())
    with pytest.raises(ValueError, match=r"swa_start='0.0dur' resolves to batch 0; start averaging later"):
        trainer.fit()


def test_switching_to_the_papers_schedule_on_resume_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="killed"):
        build(tmp_path, "swa", callbacks=[Crash(6)]).fit()  # schedule_swa_lr=False; a checkpoint at batch 5
    resumed = build(tmp_path, "swa-paper", autoresume=True)
    refused = "schedule_swa_lr='paper' schedules the LR from batch 0, but this run resumes at batch 5"
    with pytest.warns(UserWarning, match="schedule_swa_lr False → 'paper'"), pytest.raises(ValueError, match=refused):
        resumed.fit()
