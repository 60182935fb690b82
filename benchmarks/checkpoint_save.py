"""What durability costs: a checkpoint written atomically, fsync'd and digested vs a plain ``torch.save``.

Both write the same payload (a model's weights and SGD momentum) into the same folder; rounds
alternate. The figure is the median per-round ratio, durable / plain, with its spread. A third
contender, ``torch.save`` then ``fsync``, shows what the disk alone costs: the durable write hashes
while it writes (no re-read) and starts the disk's writeback early, so it cannot beat that floor. Also reported: resuming
mid-epoch, skipping the consumed batches of a shuffling DataLoader vs creating a fresh iterator.

Run: ``python -m benchmarks.checkpoint_save [--params 25_000_000]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmarks._timing import alternate, median_ratio
from composer_swa.checkpoint import capture_rng, skip_consumed_batches, write_checkpoint


def save_and_fsync(payload: dict, path: Path) -> None:
    with open(path, "wb") as file:
        torch.save(payload, file)
        file.flush()
        os.fsync(file.fileno())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=25_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    arguments = parser.parse_args()
    torch.set_num_threads(1)

    tensors = 64
    weights = {f"layer{i}.weight": torch.randn(arguments.params // tensors) for i in range(tensors)}
    payload = {"format": "composer_swa.checkpoint", "model": weights, "momentum": {k: v.clone() for k, v in weights.items()}}
    megabytes = 2 * arguments.params * 4 / 1e6
    with tempfile.TemporaryDirectory() as folder:
        samples = alternate(
            {
                "durable": lambda: write_checkpoint(payload, Path(folder) / "ep0-ba1.pt"),
                "plain": lambda: torch.save(payload, Path(folder) / "plain.pt"),
                "plain+fsync": lambda: save_and_fsync(payload, Path(folder) / "synced.pt"),
            },
            arguments.repeats,
        )
    print(
        f"checkpoint of {megabytes:.0f} MB: plain torch.save {statistics.median(samples['plain']):.3f} s, "
        f"atomic + fsync + SHA-256 {statistics.median(samples['durable']):.3f} s"
    )
    # the last line is what durability costs above the disk's own floor (the same fsync, no atomic rename or digest)
    for name, base, note in (
        ("durable", "plain", "; target <= 1.3x"),
        ("plain+fsync", "plain", ": the disk's floor"),
        ("durable", "plain+fsync", ": the rename and digest above that floor"),
    ):
        ratios = sorted(a / b for a, b in zip(samples[name], samples[base]))
        print(
            f"{name} / {base} (median of per-round ratios): {median_ratio(samples[name], samples[base]):.2f}x "
            f"(spread {ratios[0]:.2f}-{ratios[-1]:.2f}){note}"
        )

    loader = DataLoader(TensorDataset(torch.randn(100_000, 32), torch.randint(0, 10, (100_000,))), batch_size=100, shuffle=True)
    checkpoint = {"epoch_rng": capture_rng(loader), "rng": capture_rng(loader)}
    consumed = len(loader) // 2
    skip = alternate(
        {"skip": lambda: next(skip_consumed_batches(loader, checkpoint, consumed)), "fresh": lambda: next(iter(loader))},
        arguments.repeats,
    )
    print(
        f"resuming at batch {consumed} of {len(loader)}: skipping the consumed batches takes "
        f"{statistics.median(skip['skip']) * 1e3:.1f} ms ({statistics.median(skip['skip']) / consumed * 1e6:.1f} us a batch)"
    )


if __name__ == "__main__":
    main()
