"""Composer's Getting Started tutorial (``examples/getting_started.ipynb``): its baseline Trainer run, ported.

The model, optimizer, scheduler, logger and Trainer cells are Composer's with only the import lines
changed (``composer`` -> ``composer_swa``). Two things cannot run here and are substituted:

* The tutorial downloads CIFAR-10 (``datasets.CIFAR10(..., download=True)``); there is no network.
  The data cell reads the local Fashion-MNIST files instead: 16 training and 8 test images, each
  repeated to 3 channels and padded to CIFAR's 32x32, in batches of 8 (the tutorial's 1024 would be
  one batch), so each epoch is 2 batches and the ResNet-56 trains in seconds on a CPU.
* The tutorial trains on ``"gpu"`` when CUDA is available; its own device cell picks ``"cpu"`` here.

The tutorial's plotting cells (matplotlib, ``get_timeseries``) are left out. What is checked is what
Composer's run does: 3 epochs of 2 optimizer steps, an evaluation at the end of each epoch (Composer's
default ``eval_interval=1``), the learning rate warmed up over the first epoch and flat after it
(``LinearWithWarmupScheduler(t_warmup="1ep", alpha_i=1.0, alpha_f=1.0)``), and the metrics in the
InMemoryLogger.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from composer_swa.data.fashion_mnist import fashion_mnist


class CifarShaped(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Fashion-MNIST images as CIFAR-10's 3x32x32 (repeated channels, 2 pixels of padding)."""

    def __init__(self, split: str, samples: int) -> None:
        self.images = Subset(fashion_mnist(split), range(samples))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.images[index]
        return F.pad(image.reshape(1, 28, 28), (2, 2, 2, 2)).repeat(3, 1, 1), label


def test_the_getting_started_baseline_run() -> None:
    # --- Composer's imports cell, renamed ---
    import composer_swa as composer
    from composer_swa.loggers import InMemoryLogger

    torch.manual_seed(42)  # For replicability

    # --- the data cell, substituted (see the module docstring) ---
    batch_size = 8
    train_dataloader = DataLoader(CifarShaped("train", 16), batch_size=batch_size, shuffle=True)
    test_dataloader = DataLoader(CifarShaped("test", 8), batch_size=batch_size, shuffle=True)

    # --- Composer's model cell ---
    import torch.nn as nn

    from composer_swa.models import ComposerClassifier

    class Block(nn.Module):
        """A ResNet block."""

        def __init__(self, f_in: int, f_out: int, downsample: bool = False):
            super().__init__()

            stride = 2 if downsample else 1
            self.conv1 = nn.Conv2d(f_in, f_out, kernel_size=3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(f_out)
            self.conv2 = nn.Conv2d(f_out, f_out, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(f_out)
            self.relu = nn.ReLU(inplace=True)

            # No parameters for shortcut connections.
            if downsample or f_in != f_out:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(f_in, f_out, kernel_size=1, stride=2, bias=False),
                    nn.BatchNorm2d(f_out),
                )
            else:
                self.shortcut = nn.Sequential()

        def forward(self, x: torch.Tensor):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += self.shortcut(x)
            return self.relu(out)

    class ResNetCIFAR(nn.Module):
        """A residual neural network as originally designed for CIFAR-10."""

        def __init__(self, outputs: int = 10):
            super().__init__()

            depth = 56
            width = 16
            num_blocks = (depth - 2) // 6

            plan = [(width, num_blocks), (2 * width, num_blocks), (4 * width, num_blocks)]

            self.num_classes = outputs

            # Initial convolution.
            current_filters = plan[0][0]
            self.conv = nn.Conv2d(3, current_filters, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(current_filters)
            self.relu = nn.ReLU(inplace=True)

            # The subsequent blocks of the ResNet.
            blocks = []
            for segment_index, (filters, num_blocks) in enumerate(plan):
                for block_index in range(num_blocks):
                    downsample = segment_index > 0 and block_index == 0
                    blocks.append(Block(current_filters, filters, downsample))
                    current_filters = filters

            self.blocks = nn.Sequential(*blocks)

            # Final fc layer. Size = number of filters in last segment.
            self.fc = nn.Linear(plan[-1][0], outputs)
            self.criterion = nn.CrossEntropyLoss()

        def forward(self, x: torch.Tensor):
            out = self.relu(self.bn(self.conv(x)))
            out = self.blocks(out)
            out = F.avg_pool2d(out, out.size()[3])
            out = out.view(out.size(0), -1)
            out = self.fc(out)
            return out

    model = ComposerClassifier(module=ResNetCIFAR(), num_classes=10)

    # --- Composer's optimizer, scheduler and logger cells ---
    optimizer = composer.optim.DecoupledSGDW(
        model.parameters(),  # Model parameters to update
        lr=0.05,  # Peak learning rate
        momentum=0.9,
        weight_decay=2.0e-3,  # If this looks large, it's because its not scaled by the LR as in non-decoupled weight decay
    )
    lr_scheduler = composer.optim.LinearWithWarmupScheduler(
        t_warmup="1ep",  # Warm up over 1 epoch
        alpha_i=1.0,  # Flat LR schedule achieved by having alpha_i == alpha_f
        alpha_f=1.0,
    )
    # "baseline" = no algorithms (which is what we're doing now)
    logger_for_baseline = InMemoryLogger()

    # --- Composer's Trainer cell ---
    train_epochs = "3ep"  # Train for 3 epochs because we're assuming Colab environment and hardware
    device = "gpu" if torch.cuda.is_available() else "cpu"  # select the device

    trainer = composer.trainer.Trainer(
        model=model,
        train_dataloader=train_dataloader,
        eval_dataloader=test_dataloader,
        max_duration=train_epochs,
        optimizers=optimizer,
        schedulers=lr_scheduler,
        device=device,
        loggers=logger_for_baseline,
    )
    trainer.fit()  # <-- Your training loop in action!

    # --- what Composer's run does ---
    assert trainer.state.timestamp.epoch_count == 3 and trainer.state.timestamp.batch_count == 6  # 6 optimizer steps
    eval_keys = [key for key in logger_for_baseline.data if "eval" in key]
    assert eval_keys and all([step for step, _ in logger_for_baseline.data[key]] == [2, 4, 6] for key in eval_keys)
    assert trainer.state.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.05)  # warm-up over, flat at the peak
