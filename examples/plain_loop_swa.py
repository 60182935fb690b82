"""SWA inside your own PyTorch loop: no Trainer, the same algorithm and semantics.

    python examples/plain_loop_swa.py

Your loop builds a State and an Engine and fires the events SWA listens to (FIT_START, BATCH_START,
BATCH_END, EPOCH_END, FIT_END), advancing the timestamp before BATCH_END.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa import SWA, Engine, Event, State
from composer_swa.loggers import ConsoleLogger, Logger


def main() -> None:
    torch.manual_seed(0)
    inputs = torch.randn(512, 8)
    targets = (inputs[:, :2].sum(1) > 0).long()
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=32, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    swa = SWA(swa_start="0.6dur", update_interval="4ba", schedule_swa_lr=True, swa_lr=0.02)
    state = State(model=model, max_duration="10ep", train_dataloader=loader, optimizers=[optimizer], algorithms=[swa])
    engine = Engine(state, Logger([ConsoleLogger()]))

    engine.run_event(Event.FIT_START)
    while not state.is_finished:
        for x, y in loader:
            engine.run_event(Event.BATCH_START)  # SWA sets the LR here while it owns it
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            state.timestamp.advance_batch(samples=len(x), tokens=0)
            engine.run_event(Event.BATCH_END)  # snapshots, and the swap + batch-norm pass at swa_end
        state.timestamp.advance_epoch()
        engine.run_event(Event.EPOCH_END)
    engine.run_event(Event.FIT_END)

    model.eval()
    with torch.no_grad():
        accuracy = (model(inputs).argmax(1) == targets).float().mean().item()
    print(f"averaged {swa.n_averaged} snapshots; training accuracy of the SWA model: {accuracy:.1%}")


if __name__ == "__main__":
    main()
