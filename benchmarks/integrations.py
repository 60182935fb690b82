"""What SWA costs inside other loops: a plain loop, transformers.Trainer and lightning.Trainer.

For each loop the same medium MLP (256→1024→1024→10, ≈1.3M params, batch 128, CPU, one thread)
trains 4 epochs over 8192 samples three ways: bare; with composer_swa's adapter and no algorithm
(what the event plumbing costs); and with ``SWA(update_interval="1ba")`` through the adapter (the
default window 0.7dur→1.0dur, so the final swap is included). Runs alternate within a loop;
printed: median per-round throughput ratios against bare. SWA's target is our Trainer's
(``benchmarks/swa_throughput.py``): >= 0.97.

    python -m benchmarks.integrations [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from benchmarks._timing import alternate, median_ratio
from composer_swa import SWA, Algorithm
from composer_swa.integrations import AlgorithmRunner

SAMPLES, BATCH, EPOCHS = 8192, 128, 4


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)
    )


def make_data() -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(SAMPLES, 256, generator=generator), torch.randint(0, 10, (SAMPLES,), generator=generator))


def plain_loop(algorithms: list[Algorithm] | None) -> None:
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(make_data(), batch_size=BATCH, shuffle=True)
    runner = AlgorithmRunner(algorithms or [], model, optimizer, loader, f"{EPOCHS}ep", loggers=[])
    adapted = algorithms is not None
    if adapted:
        runner.fit_start()
    for _ in range(EPOCHS):
        for x, y in loader:
            if adapted:
                runner.batch_start()
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            if adapted:
                runner.batch_end(samples=len(x))
    if adapted:
        runner.fit_end()


class _DictData(Dataset[dict[str, torch.Tensor]]):
    def __init__(self) -> None:
        self.data = make_data()

    def __len__(self) -> int:
        return SAMPLES

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        x, y = self.data[index]
        return {"x": x, "labels": y}


class _WithLoss(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = make_model()

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def hugging_face(algorithms: list[Algorithm] | None) -> None:
    from transformers import Trainer, TrainingArguments

    from composer_swa.integrations import HuggingFaceCallback

    model = _WithLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=BATCH,
            num_train_epochs=EPOCHS,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            remove_unused_columns=False,
        )
        callbacks = [HuggingFaceCallback(algorithms, loggers=[])] if algorithms is not None else []
        Trainer(model=model, args=args, train_dataset=_DictData(), optimizers=(optimizer, schedule), callbacks=callbacks).train()


def lightning(algorithms: list[Algorithm] | None) -> None:
    import lightning.pytorch as pl

    from composer_swa.integrations import LightningCallback

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_model()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)

    callbacks = [LightningCallback(algorithms, loggers=[])] if algorithms is not None else []
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(Module(), train_dataloaders=DataLoader(make_data(), batch_size=BATCH, shuffle=True))


LOOPS: dict[str, tuple[Callable[[list[Algorithm] | None], None], str | None]] = {
    "plain loop": (plain_loop, None),
    "transformers": (hugging_face, "transformers"),
    "lightning": (lightning, "lightning"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    for name, (run, package) in LOOPS.items():
        if package is not None and importlib.util.find_spec(package) is None:
            print(f"{name:12s} not installed (pip install 'composer_swa[{'hf' if package == 'transformers' else package}]')")
            continue
        contenders = {
            "bare": lambda run=run: run(None),
            "adapter": lambda run=run: run([]),
            "swa": lambda run=run: run([SWA(update_interval="1ba")]),
        }
        times = alternate(contenders, args.repeats)
        adapter, swa = median_ratio(times["bare"], times["adapter"]), median_ratio(times["bare"], times["swa"])
        print(
            f"{name:12s} throughput / bare: adapter alone {adapter:.3f}, adapter + SWA {swa:.3f}   "
            f"(medians of {args.repeats} rounds; SWA target >= 0.97)"
        )


if __name__ == "__main__":
    main()
