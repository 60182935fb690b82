"""SWA inside lightning.Trainer: the plain-loop example's model and data, as a LightningModule.

    pip install 'composer_swa[lightning]' && python examples/lightning_swa.py

The callback maps Lightning's optimizer steps to composer_swa's events; its state (the average,
the snapshot count) rides in Lightning's checkpoints, so trainer.fit(..., ckpt_path=...) resumes it.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa import SWA
from composer_swa.integrations import LightningCallback


class Classifier(pl.LightningModule):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(), torch.nn.Linear(32, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)}


def main() -> None:
    torch.manual_seed(0)
    inputs = torch.randn(512, 8)
    targets = (inputs[:, :2].sum(1) > 0).long()
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=32, shuffle=True)
    module = Classifier()

    swa = SWA(swa_start="0.6dur", update_interval="4ba", schedule_swa_lr=True, swa_lr=0.02)
    trainer = pl.Trainer(
        max_epochs=10,
        accelerator="cpu",
        callbacks=[LightningCallback([swa])],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=loader)

    module.eval()
    with torch.no_grad():
        accuracy = (module(inputs).argmax(1) == targets).float().mean().item()
    print(f"averaged {swa.n_averaged} snapshots; training accuracy of the SWA model: {accuracy:.1%}")


if __name__ == "__main__":
    main()
