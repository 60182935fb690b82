"""The run the resume tests interrupt: shuffled without an explicit generator, with dropout and momentum.

Run as ``python -m tests.checkpoint.resume_run FOLDER ALGORITHMS --stop-at N --signal KILL|TERM``: it
sends itself the signal after batch N. Imported, :func:`build` makes the same Trainer in-process.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa import EMA, LAWA, SWA, SWAG, SWATS, Callback, State, Trainer
from composer_swa.algorithms.averaging_algorithm import AveragingAlgorithm
from composer_swa.loggers import Logger

ALGORITHMS = {
    "sgd": lambda: [],
    "swa": lambda: [SWA(swa_start="0.25dur", swa_end="0.75dur", update_interval="2ba", swa_lr=0.02)],
    "ema": lambda: [EMA(half_life="4ba")],
    "swa+ema": lambda: [SWA(swa_start="0.25dur", update_interval="2ba"), EMA(half_life="4ba", replace_at_fit_end=False)],
}
#: Resumed in-process only (the subprocess kills cover the four above).
MORE_ALGORITHMS = {
    "lawa": lambda: [LAWA(window=3, update_interval="4ba")],
    "swats": lambda: [SWATS(switch_at="14ba")],  # Adam until batch 14, SGD after: resumes after the switch
    # Snapshots at 12, 14, ..., 36 into a ring of 3 columns: the checkpoint at 15 holds 2, the resumed run wraps it.
    "swag": lambda: [SWAG(swa_start="0.25dur", swa_end="0.75dur", update_interval="2ba", swa_lr=0.02, max_rank=3)],
    # The paper's LR schedule: decays from batch 12 to 21.6 (the stops at 15 and 17 fall inside), held until swa_end.
    "swa-paper": lambda: [
        SWA(swa_start="0.5dur", swa_end="0.75dur", update_interval="2ba", schedule_swa_lr="paper", swa_lr=0.01)
    ],
}
BATCHES_PER_EPOCH = 12


def build(folder: Path, algorithms: str, callbacks: list[Callback] | None = None, **checkpointing: Any) -> Trainer:
    data = torch.Generator().manual_seed(7)
    inputs = torch.randn(BATCHES_PER_EPOCH * 8, 6, generator=data)
    targets = torch.randint(0, 3, (BATCHES_PER_EPOCH * 8,), generator=data)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 3))
    optimizer: torch.optim.Optimizer
    if algorithms == "swats":
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return Trainer(
        model,
        DataLoader(TensorDataset(inputs, targets), batch_size=8, shuffle=True),
        "4ep",
        optimizers=optimizer,
        schedulers=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4 * BATCHES_PER_EPOCH),
        step_schedulers_every_batch=True,
        algorithms={**ALGORITHMS, **MORE_ALGORITHMS}[algorithms](),
        callbacks=callbacks or [],
        seed=0,
        progress_bar=False,
        loggers=[],
        save_folder=folder,
        save_interval="5ba",
        **checkpointing,
    )


def final_weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The model's weights, and each average's, after fit."""
    weights = {f"model.{k}": v.clone() for k, v in trainer.state.model.state_dict().items()}
    for algorithm in trainer.state.algorithms:
        if not isinstance(algorithm, AveragingAlgorithm):
            continue
        for name, tensor in (algorithm.averaged_weights() or {}).items():
            weights[f"{algorithm.name}.{name}"] = tensor
        if isinstance(algorithm, SWAG):  # its moments and deviations too
            weights |= {f"{algorithm.name}.{name}": tensor for name, tensor in algorithm.posterior().tensors().items()}
    return weights


class SignalSelf(Callback):
    """Sends this process a signal after a given batch, as a scheduler or the OOM killer would."""

    def __init__(self, batch: int, number: signal.Signals) -> None:
        self.batch, self.number = batch, number

    def batch_end(self, state: State, logger: Logger) -> None:
        if state.timestamp.batch_count == self.batch:
            os.kill(os.getpid(), self.number)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("algorithms", choices=sorted(ALGORITHMS))
    parser.add_argument("--stop-at", type=int, required=True)
    parser.add_argument("--signal", choices=["KILL", "TERM", "INT"], required=True)
    arguments = parser.parse_args()
    number = signal.Signals[f"SIG{arguments.signal}"]
    build(arguments.folder, arguments.algorithms, callbacks=[SignalSelf(arguments.stop_at, number)]).fit()


if __name__ == "__main__":
    main()
