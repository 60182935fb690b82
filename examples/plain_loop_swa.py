"""SWA inside your own PyTorch loop: no Trainer, the same algorithm and semantics.

    python examples/plain_loop_swa.py

An AlgorithmRunner holds the State and Engine; the loop calls it at the points of the event
contract: fit_start, batch_start (SWA sets the LR), batch_end (snapshots, and at swa_end the swap
plus the batch-norm pass), fit_end. Epochs close with their last batch.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa import SWA
from composer_swa.integrations import AlgorithmRunner


def main() -> None:
    torch.manual_seed(0)
    inputs = torch.randn(512, 8)
    targets = (inputs[:, :2].sum(1) > 0).long()
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=32, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=160)

    swa = SWA(swa_start="0.6dur", update_interval="4ba", schedule_swa_lr=True, swa_lr=0.02)
    runner = AlgorithmRunner([swa], model, optimizer, loader, max_duration="10ep")

    runner.fit_start()
    for _epoch in range(10):
        for x, y in loader:
            runner.batch_start()
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            if not runner.owns_lr:  # SWA holds the LR inside its window
                schedule.step()
            runner.batch_end(samples=len(x))
    runner.fit_end()

    model.eval()
    with torch.no_grad():
        accuracy = (model(inputs).argmax(1) == targets).float().mean().item()
    print(f"averaged {swa.n_averaged} snapshots; training accuracy of the SWA model: {accuracy:.1%}")


if __name__ == "__main__":
    main()
