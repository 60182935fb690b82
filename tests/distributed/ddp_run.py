"""The runs the distributed tests launch under torchrun (2 processes, gloo) and compare with 1 process.

``python -m torch.distributed.run --standalone --nproc-per-node N -m tests.distributed.ddp_run CASE OUT``
runs CASE and writes what the test checks into OUT (the model's run folders sit in ``OUT/run``). Each
process also records, through a Python audit hook, every file it opened for writing, so the test can
check that process 0 alone writes.

Cases: ``swa`` (no batch norm), ``bn`` (SWA with batch norm), ``resume`` (dropout, checkpoints; with
``--kill-at N`` process 0 SIGKILLs itself after batch N, with ``--term-at N`` process 1 gets SIGTERM),
``fsdp-ema`` (FSDP2 with EMA; ``--parallelism`` picks the wrapper), ``fsdp-swag`` (the same with SWAG, plus one
sample drawn after fit). ``swa`` and ``resume`` save
checkpoints every 3 batches; ``--load-path`` starts from one.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from composer_swa import EMA, SWA, SWAG, Callback, State, Trainer
from composer_swa.distributed import distributed_info
from composer_swa.loggers import Logger
from composer_swa.metrics import metric_values

SAMPLES = 64
GLOBAL_BATCH = 16


def dataset() -> TensorDataset:
    data = torch.Generator().manual_seed(7)
    return TensorDataset(torch.randn(SAMPLES, 6, generator=data) * 2 + 1, torch.randint(0, 3, (SAMPLES,), generator=data))


def model_for(case: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if case == "bn":
        return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    if case == "resume":
        return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 3))
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
    )


def train_loader(world_size: int) -> DataLoader[Any]:
    """Per-process batches of GLOBAL_BATCH / N. One process gets the same shuffle as N through a
    one-replica DistributedSampler; N processes get a plain shuffling loader, which the Trainer shards."""
    batch_size = GLOBAL_BATCH // world_size
    if world_size == 1:
        sampler = DistributedSampler(dataset(), num_replicas=1, rank=0, shuffle=True, seed=0)
        return DataLoader(dataset(), batch_size=batch_size, sampler=sampler)
    return DataLoader(dataset(), batch_size=batch_size, shuffle=True)


class SignalAt(Callback):
    """Sends one process a signal after a given batch, as a scheduler or the OOM killer would."""

    def __init__(self, batch: int, number: signal.Signals, rank: int) -> None:
        self.batch, self.number, self.rank = batch, number, rank

    def batch_end(self, state: State, logger: Logger) -> None:
        if state.timestamp.batch_count == self.batch and distributed_info().rank == self.rank:
            os.kill(os.getpid(), self.number)


def build(
    case: str, out: Path, world_size: int, parallelism: str | None, callbacks: list[Callback], load_path: Path | None = None
) -> Trainer:
    model = model_for(case)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    swa = SWA(swa_start="0.5dur", update_interval="1ba", swa_lr=0.02)
    algorithms: list[Any] = [EMA(half_life="3ba")] if case == "fsdp-ema" else [swa]
    if case == "fsdp-swag":
        algorithms = [SWAG(swa_start="0.5dur", update_interval="1ba", swa_lr=0.02, max_rank=3)]
    checkpoints: dict[str, Any] = {}
    if case in ("resume", "swa", "fsdp-ema"):
        checkpoints = {"save_folder": out / "run" / "checkpoints", "save_interval": "3ba", "autoresume": True}
    return Trainer(
        model,
        train_loader(world_size),
        "5ep",
        eval_dataloader=DataLoader(dataset(), batch_size=GLOBAL_BATCH // world_size),
        optimizers=optimizer,
        algorithms=algorithms,
        callbacks=callbacks,
        seed=0,
        progress_bar=False,
        log_to_console=True,  # the test reads "resumed from ..." in the output
        run_dir=out / "run",
        parallelism=parallelism,
        load_path=load_path,
        **checkpoints,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["swa", "bn", "resume", "fsdp-ema", "fsdp-swag"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--parallelism", default=None)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--term-at", type=int)
    parser.add_argument("--load-path", type=Path, help="a checkpoint to start from (e.g. one saved by another world size)")
    args = parser.parse_args()
    written: list[str] = []

    def note_writes(event: str, arguments: tuple[Any, ...]) -> None:
        opened_for_writing = event == "open" and any(flag in str(arguments[1] or "") for flag in "wax+")
        if (opened_for_writing or event in ("os.rename", "os.replace", "os.mkdir")) and isinstance(
            arguments[0], (str, os.PathLike)
        ):
            written.append(os.fspath(arguments[0]))

    sys.addaudithook(note_writes)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    callbacks: list[Callback] = []
    if args.kill_at is not None:
        callbacks.append(SignalAt(args.kill_at, signal.SIGKILL, rank=0))
    if args.term_at is not None:
        callbacks.append(SignalAt(args.term_at, signal.SIGTERM, rank=1))
    trainer = build(args.case, args.out, world_size, args.parallelism, callbacks, args.load_path)
    trainer.fit()
    if trainer.checkpointer.options.save_folder is None:
        from composer_swa.checkpoint import export_weights

        export_weights(trainer.state, args.out / "run" / "final")
    rank = trainer.distributed.rank
    batch_norm = {name: buffer for name, buffer in trainer.state.model.named_buffers() if "running" in name}
    report = {"written": written, "batch_norm": batch_norm, "eval": metric_values(trainer.state.eval_metrics)}
    report["timestamp"] = trainer.state.timestamp.state_dict()
    if args.case == "fsdp-swag":  # one seed on every process: one sampled model, whatever the sharding
        from composer_swa.distributed.sharded import full_model_state_dict

        trainer.state.algorithms[0].sample(generator=torch.Generator().manual_seed(0))  # type: ignore[attr-defined]
        report["sample"] = full_model_state_dict(trainer.state.model)
    (args.out / "reports").mkdir(parents=True, exist_ok=True)
    torch.save(report, args.out / "reports" / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
