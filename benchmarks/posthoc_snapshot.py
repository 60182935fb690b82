"""What a post-hoc EMA snapshot costs: bytes on disk and seconds per write, against one ``torch.save``.

For each model size (the char GPT of ``examples/char_stdlib_constant.yaml``, and wider ones built
from the same config with ``model.*`` overrides), a :class:`~composer_swa.algorithms.PostHocEMA` with
one profile is started through :class:`~composer_swa.integrations.AlgorithmRunner` and updated once;
then three contenders write the same fp32 average again and again (alternated, as in
:mod:`benchmarks._timing`):

- ``snapshot``: ``PostHocEMA.apply(Event.EPOCH_END, ...)``, the call the engine makes at a snapshot
  on the schedule (the streamed, atomic safetensors write with its fsync, then the index rewrite);
- ``torch.save``: one plain ``torch.save`` of the same state dict;
- ``torch.save, atomic``: the same inside :func:`~composer_swa.atomic_files.atomic_write` (fsync + rename),
  which separates the cost of durability from the cost of the format.

Reported: the snapshot file's bytes against the model's fp32 size (4 bytes per averaged element),
the median seconds per write and the median of per-round ratios to ``torch.save`` with the spread
(min..max of the ratios). The index grows by one entry per snapshot; here it holds one.

Run: ``python -m benchmarks.posthoc_snapshot [--repeats 20] [--out benchmarks/results]``
(writes ``OUT/posthoc_snapshot.md`` and ``.json``; under a minute).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks._timing import alternate, median_ratio
from composer_swa.algorithms.posthoc_ema import PostHocEMA
from composer_swa.atomic_files import atomic_write
from composer_swa.config import build_run, load_config
from composer_swa.events import Event
from composer_swa.integrations import AlgorithmRunner

CONFIG = Path(__file__).resolve().parent.parent / "examples" / "char_stdlib_constant.yaml"
#: label -> overrides of the config's model
SIZES = {
    "char GPT of the config (2 x 64)": [],
    "char GPT 4 x 256": ["model.layers=4", "model.width=256"],
    "char GPT 4 x 512": ["model.layers=4", "model.width=512"],
}


def measure(overrides: list[str], repeats: int, folder: Path) -> dict[str, Any]:
    """Bytes and seconds of one snapshot of the model the config builds with ``overrides``."""
    config = load_config(CONFIG, overrides)
    config.algorithms = []
    model = build_run(config, CONFIG.parent).model
    posthoc = PostHocEMA(sigma_rels=(0.05,), snapshot_interval="1000000ba", snapshot_dir=folder / "snapshots")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    runner = AlgorithmRunner([posthoc], model, optimizer, [0] * 10, max_duration="10ba", loggers=[])
    runner.fit_start()
    runner.batch_start()
    runner.batch_end()  # the first update: the average now holds the weights
    weights = posthoc.averages[0].full_state_dict()
    elements = sum(t.numel() for t in weights.values() if t.is_floating_point())
    plain, atomic = folder / "plain.pt", folder / "atomic.pt"
    samples = alternate(
        {
            "snapshot": lambda: posthoc.apply(Event.EPOCH_END, runner.state, runner.logger),
            "torch.save": lambda: torch.save(weights, plain),
            "torch.save, atomic": lambda: atomic_write(atomic, lambda temporary: torch.save(weights, temporary)),
        },
        repeats,
    )
    snapshot_file = posthoc.folder / posthoc.snapshots[0].file  # type: ignore[operator]
    ratios = {name: [a / b for a, b in zip(samples[name], samples["torch.save"])] for name in samples}
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "fp32_bytes": 4 * elements,
        "snapshot_bytes": snapshot_file.stat().st_size,
        "torch_save_bytes": plain.stat().st_size,
        "seconds": {name: statistics.median(values) for name, values in samples.items()},
        "ratio_to_torch_save": {name: median_ratio(samples[name], samples["torch.save"]) for name in samples},
        "ratio_spread": {name: [min(values), max(values)] for name, values in ratios.items()},
        "repeats": repeats,
    }


def table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown: storage per snapshot against fp32 size, and time per write against ``torch.save``."""
    lines = [
        "| model | parameters | snapshot bytes (× fp32 size) | torch.save bytes | snapshot write (ms) | torch.save (ms) "
        "| snapshot / torch.save (median, min..max) | atomic torch.save / torch.save |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        seconds, ratio, spread = row["seconds"], row["ratio_to_torch_save"], row["ratio_spread"]
        lines.append(
            f"| {label} | {row['parameters']:,} | {row['snapshot_bytes']:,} ({row['snapshot_bytes'] / row['fp32_bytes']:.4f}) "
            f"| {row['torch_save_bytes']:,} | {1e3 * seconds['snapshot']:.2f} | {1e3 * seconds['torch.save']:.2f} "
            f"| {ratio['snapshot']:.2f} ({spread['snapshot'][0]:.2f}..{spread['snapshot'][1]:.2f}) "
            f"| {ratio['torch.save, atomic']:.2f} |"
        )
    return "\n".join(lines)


def run(repeats: int) -> dict[str, dict[str, Any]]:
    """Every size of :data:`SIZES`, each in a fresh temporary folder."""
    rows = {}
    for label, overrides in SIZES.items():
        with tempfile.TemporaryDirectory() as folder:
            rows[label] = measure(overrides, repeats, Path(folder))
        print(f"{label}: {json.dumps(rows[label])}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run(args.repeats)
    text = f"### Post-hoc EMA snapshot cost ({args.repeats} alternated rounds)\n\n{table(rows)}\n"
    print(text)
    (args.out / "posthoc_snapshot.json").write_text(json.dumps(rows, indent=1) + "\n")
    (args.out / "posthoc_snapshot.md").write_text(text)


if __name__ == "__main__":
    main()
