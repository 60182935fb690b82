"""Post-hoc EMA on real data: a σ_rel sweep reconstructed from one run, against EMAs tracked directly.

Recipe: the character GPT of ``examples/char_stdlib_constant.yaml`` (this Python's standard library,
AdamW at a constant LR after warm-up, gradient clipping), built by the package's
:func:`~composer_swa.config.build_run` with ``trainer.seed`` and ``trainer.max_duration`` set and the
config's EMA, LAWA and SWA replaced by two :class:`~composer_swa.algorithms.PostHocEMA`:

- ``A`` tracks EDM2's two profiles (σ_rel 0.05 and 0.10) and snapshots them every
  ``--snapshot-interval`` (default 2% of the run: 50 snapshots a profile) into ``A/``;
- ``B`` tracks the lengths of :data:`DIRECT` and snapshots them once, at the end, into ``B/``.

An EMA reads the weights and never writes them, so ``B``'s averages are exactly those that separate
runs of the same seed, each tracking one length directly, would end with; one run holds them all.

Then every length of the sweep (:data:`GRID`, plus the tracked and direct lengths) is reconstructed
from ``A/`` alone by :func:`~composer_swa.merging.posthoc.reconstruct` and evaluated with
``Trainer.eval`` on the config's ``data.eval`` (eval loss in nats per character; the model has no
batch norm), as are ``B``'s averages and the live weights. Reported per σ_rel: the reconstruction's
loss, the directly tracked loss where there is one, the fit's residual (the profile's relative L2
error, :class:`~composer_swa.averaging.power_ema.Reconstruction`) and the relative L2 distance of
the reconstructed weights from the direct ones; and the largest |reconstructed − direct| loss gap.

Writes ``OUT/posthoc.md`` (mean ± std over seeds), ``OUT/posthoc.json`` (every seed's figures) and
``OUT/posthoc.png`` (loss against σ_rel), with the snapshot cost of :mod:`benchmarks.posthoc_snapshot`
unless ``--no-snapshot-cost``. Default OUT ``benchmarks/results/``.

Run: ``python -m benchmarks.posthoc_results [--seeds 0 1 2] [--max-duration 1000ba] [--out benchmarks/results]``
(8 minutes a seed on the shared 2-core machine, 5.4 of them training, with the snapshot cost after).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from benchmarks import posthoc_snapshot
from composer_swa.algorithms.posthoc_ema import PostHocEMA
from composer_swa.averaging.model_average import load_tracked_weights
from composer_swa.averaging.posthoc_index import read_index
from composer_swa.config import build_run, load_config
from composer_swa.merging.posthoc import reconstruct

CONFIG = Path(__file__).resolve().parent.parent / "examples" / "char_stdlib_constant.yaml"
TRACKED = (0.05, 0.10)  # EDM2's two profiles, snapshotted during the run
DIRECT = (0.03, 0.07, 0.15, 0.25)  # tracked directly, read once at the end
GRID = tuple(round(float(s), 4) for s in np.linspace(0.02, 0.28, 12))
_KEPT = {"gradient_clipping"}  # the config's algorithms that change training; the averages are replaced


def run_seed(seed: int, max_duration: str, snapshot_interval: str, work: Path) -> dict[str, Any]:
    """Trains one seed with both PostHocEMAs; returns the live loss and, per σ_rel, the figures of the table."""
    folder = work / f"seed-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    config = load_config(CONFIG, [f"trainer.seed={seed}", f"trainer.max_duration={max_duration}"])
    # every algorithm schema has a name; mypy sees a union without the attribute
    config.algorithms = [a for a in config.algorithms if getattr(a, "name") in _KEPT]  # noqa: B009
    parts = build_run(config, CONFIG.parent, source=str(CONFIG))
    parts.algorithms += [
        PostHocEMA(sigma_rels=TRACKED, snapshot_interval=snapshot_interval, snapshot_dir=folder / "A"),
        PostHocEMA(sigma_rels=DIRECT, snapshot_interval=max_duration, snapshot_dir=folder / "B"),
    ]
    trainer = parts.trainer(loggers=[])
    start = time.perf_counter()
    trainer.fit()
    train_seconds = time.perf_counter() - start
    model = parts.model
    live = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}

    def loss(weights: dict[str, torch.Tensor]) -> float:
        load_tracked_weights(model, weights)
        return float(trainer.eval()["eval/loss"])

    direct = _final_snapshots(folder / "A") | _final_snapshots(folder / "B")
    rows = {}
    for sigma_rel in sorted(set(GRID) | set(TRACKED) | set(DIRECT)):
        average = reconstruct(folder / "A", sigma_rel)
        row: dict[str, Any] = {"reconstructed": loss(dict(average.tensors)), "residual": average.residual}
        if sigma_rel in direct:
            row["direct"] = loss(direct[sigma_rel])
            row["weight_distance"] = _relative_distance(average.tensors, direct[sigma_rel])
            row["tracked_in"] = "A" if sigma_rel in TRACKED else "B"
        rows[f"{sigma_rel:g}"] = row
    return {
        "live": loss(live),
        "rows": rows,
        "snapshots_in_A": len(read_index(folder / "A")),
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
    }


def _final_snapshots(folder: Path) -> dict[float, dict[str, torch.Tensor]]:
    """Each tracked σ_rel's snapshot at the folder's last step."""
    entries = read_index(folder)
    last = max(entry.step for entry in entries)
    return {entry.sigma_rel: load_file(folder / entry.file) for entry in entries if entry.step == last}


def _relative_distance(reconstructed: dict[str, torch.Tensor], direct: dict[str, torch.Tensor]) -> float:
    """‖reconstructed − direct‖ / ‖direct‖ over every floating tensor, in float64."""
    difference = total = 0.0
    for name, tensor in direct.items():
        if tensor.is_floating_point():
            difference += float((reconstructed[name].double() - tensor.double()).square().sum())
            total += float(tensor.double().square().sum())
    return math.sqrt(difference / total)


def _mean_std(values: list[float], digits: int) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"


def gaps(per_seed: dict[int, dict[str, Any]]) -> dict[str, float]:
    """The largest |reconstructed − direct| loss over the seeds at the untracked (B) and tracked (A) points."""
    result = {}
    for where in ("B", "A"):
        values = [
            abs(row["reconstructed"] - row["direct"])
            for seed in per_seed.values()
            for row in seed["rows"].values()
            if row.get("tracked_in") == where
        ]
        result[where] = max(values)
    return result


def table(per_seed: dict[int, dict[str, Any]]) -> str:
    """Markdown: per σ_rel the reconstructed and direct loss (mean ± std over seeds), residual and weight distance."""
    seeds = sorted(per_seed)
    lines = [
        "| σ_rel | reconstructed from A: eval loss | tracked directly: eval loss | fit residual | ‖rec − direct‖ / ‖direct‖ |",
        "|---|---|---|---|---|",
    ]
    for key, first in per_seed[seeds[0]]["rows"].items():
        rows = [per_seed[seed]["rows"][key] for seed in seeds]
        direct = f"{_mean_std([r['direct'] for r in rows], 4)} ({first['tracked_in']})" if "direct" in first else ""
        distance = f"{max(r['weight_distance'] for r in rows):.1e}" if "direct" in first else ""
        reconstructed = _mean_std([r["reconstructed"] for r in rows], 4)
        lines.append(f"| {key} | {reconstructed} | {direct} | {first['residual']:.1e} | {distance} |")
    lines.append(f"| live weights | {_mean_std([per_seed[s]['live'] for s in seeds], 4)} | | | |")
    return "\n".join(lines)


def plot(per_seed: dict[int, dict[str, Any]], path: Path) -> None:
    """Eval loss against σ_rel: each seed's reconstructed curve, its direct points and its live loss."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    axis = figure.add_subplot()
    for index, (seed, result) in enumerate(sorted(per_seed.items())):
        color = f"C{index}"
        sigmas = [float(key) for key in result["rows"]]
        axis.plot(sigmas, [row["reconstructed"] for row in result["rows"].values()], color=color, marker=".",
                  label=f"seed {seed}: reconstructed from σ_rel 0.05, 0.10 snapshots")  # fmt: skip
        points = [(float(key), row["direct"]) for key, row in result["rows"].items() if "direct" in row]
        xs, ys = [point[0] for point in points], [point[1] for point in points]
        axis.scatter(xs, ys, color=color, marker="x", s=60, label=f"seed {seed}: tracked directly")
        axis.axhline(result["live"], color=color, linestyle=":", label=f"seed {seed}: live weights")
    axis.set_xlabel("σ_rel (EMA length relative to the run)")
    axis.set_ylabel("eval loss (nats/char)")
    axis.set_title("Post-hoc EMA, char GPT on the Python stdlib")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-duration", default="1000ba")
    parser.add_argument("--snapshot-interval", default="0.02dur")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--no-snapshot-cost", action="store_true")
    parser.add_argument("--repeats", type=int, default=20, help="rounds of the snapshot-cost timing")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    per_seed = {}
    for seed in args.seeds:
        per_seed[seed] = run_seed(seed, args.max_duration, args.snapshot_interval, args.out / "runs" / "posthoc")
        print(f"seed {seed}: {json.dumps(per_seed[seed])}", flush=True)
    largest = gaps(per_seed)
    recipe = (
        f"`{CONFIG.relative_to(CONFIG.parent.parent)}`, {args.max_duration}, seeds {args.seeds}; A: σ_rel {list(TRACKED)} "
        f"snapshotted every {args.snapshot_interval} ({per_seed[args.seeds[0]]['snapshots_in_A']} files); "
        f"B: σ_rel {list(DIRECT)} tracked directly in the same run"
    )
    text = (
        f"### Post-hoc EMA on real data ({(time.perf_counter() - start) / 60:.1f} min)\n\n{recipe}.\n\n{table(per_seed)}\n\n"
        f"Largest |reconstructed − direct| eval loss: {largest['B']:.2e} nats/char at the untracked lengths (B), "
        f"{largest['A']:.2e} at the tracked ones (A).\n"
    )
    for seed, result in sorted(per_seed.items()):
        best = min(result["rows"], key=lambda key: result["rows"][key]["reconstructed"])
        loss = result["rows"][best]["reconstructed"]
        below = result["live"] - loss
        text += f"Seed {seed}: best reconstructed σ_rel {best} ({loss:.4f}, {below:.4f} below the live weights).\n"
    raw: dict[str, Any] = {"recipe": recipe, "per_seed": per_seed, "largest_gap": largest}
    if not args.no_snapshot_cost:
        raw["snapshot_cost"] = posthoc_snapshot.run(args.repeats)
        text += f"\n#### Snapshot cost ({args.repeats} alternated rounds)\n\n{posthoc_snapshot.table(raw['snapshot_cost'])}\n"
    print(text)
    (args.out / "posthoc.json").write_text(json.dumps(raw, indent=1) + "\n")
    (args.out / "posthoc.md").write_text(text)
    plot(per_seed, args.out / "posthoc.png")


if __name__ == "__main__":
    main()
