"""``swa-average SNAPSHOT_DIR --method posthoc``: post-hoc EMA as a merge method, one length or a scored sweep.

The folder's index (:mod:`~composer_swa.averaging.posthoc_index`) names the snapshot files
(:func:`snapshot_files` turns the folder into them, newest first, before anything opens them); the
least-squares weights of EDM2 over them are a merge's weights, so the registered method's output
is streamed by the ordinary merge code and equals :func:`~composer_swa.merging.posthoc.reconstruct`
bit for bit. ``--sweep`` reconstructs each length of a grid in memory and scores it with the
``--config`` scorer; ``--select best`` then writes the best one. Torch is imported only by a sweep.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from composer_swa.averaging.posthoc_index import SnapshotEntry, newest_first, read_index, solve_snapshot_weights
from composer_swa.averaging.power_ema import MAX_SIGMA_REL, half_life_to_sigma_rel, sigma_rel_to_gamma
from composer_swa.merging.methods import MergeInputs, MergeOptions, OptionError, Weighting

if TYPE_CHECKING:
    from collections.abc import Callable

__all__: list[str] = []

_SHOWN_BELOW = 1e-6  # weights smaller in magnitude are counted, not listed


def snapshot_files(inputs: tuple[str, ...]) -> tuple[str, ...]:
    """The snapshot files SNAPSHOT_DIR's index lists, newest first, each checked to exist.

    Raises:
        OptionError: Not exactly one folder was given.
        ValueError: The folder has no index, an empty one, or a listed file is missing.
    """
    if len(inputs) != 1 or not Path(inputs[0]).is_dir():
        raise OptionError(
            f"--method posthoc takes one input, the SNAPSHOT_DIR PostHocEMA wrote (it holds posthoc_ema.json), got {list(inputs)}"
        )
    folder = Path(inputs[0])
    entries = _entries(folder)
    for entry in entries:
        if not (folder / entry.file).is_file():
            raise ValueError(
                f"the index of {str(folder)!r} lists {entry.file!r}, which is missing: copy the whole snapshot folder, "
                "or restore that file"
            )
    return tuple(str(folder / entry.file) for entry in newest_first(entries))


def _entries(folder: Path) -> list[SnapshotEntry]:
    try:
        entries = read_index(folder)
    except FileNotFoundError as error:  # an error of the input, reported like the other unreadable inputs
        raise ValueError(f"{error}; give the snapshot_dir of a run trained with PostHocEMA") from None
    if not entries:
        raise ValueError(f"{str(folder)!r} lists no snapshots yet: PostHocEMA writes them every snapshot_interval")
    return entries


def weigh_posthoc(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    """The weights of one length (``--sigma-rel``/``--half-life``), or of a sweep's best (``--sweep``)."""
    folder = Path(inputs.paths[0]).parent
    entries = _entries(folder)
    given = [flag for flag, value in (("--sigma-rel", options.sigma_rel), ("--half-life", options.half_life),
                                      ("--sweep", options.sweep)) if value is not None]  # fmt: skip
    if len(given) != 1:
        raise OptionError(
            "--method posthoc needs one of --sigma-rel 0.07, --half-life 500ba or --sweep 0.02:0.20:10"
            + (f", not {' and '.join(given)} together" if given else "")
        )
    if options.sweep is None and (options.select is not None or options.plot is not None):
        raise OptionError("--select and --plot choose among the lengths of a --sweep; give --sweep START:STOP:COUNT")
    last = max(entry.step for entry in entries)
    if options.sweep is not None:
        return _sweep(options, inputs, folder, _grid(options.sweep))
    sigma_rel = _sigma_rel(options, last)
    return _weighting(inputs, folder, entries, sigma_rel)


def _weighting(inputs: MergeInputs, folder: Path, entries: list[SnapshotEntry], sigma_rel: float) -> Weighting:
    used, fit = solve_snapshot_weights(entries, sigma_rel)
    weight_of = {str(folder / entry.file): float(weight) for entry, weight in zip(used, fit.weights)}
    weights = [weight_of[path] for path in inputs.paths]
    step = max(entry.step for entry in used)
    steps = [
        f"sigma_rel {sigma_rel:.6g} (gamma {sigma_rel_to_gamma(sigma_rel):.4g}) read at step {step}, "
        f"from {len(used)} snapshots: residual {fit.residual:.2e} (the profile fit's relative L2 error)"
    ]
    shown = [(weight, Path(path).name) for path, weight in zip(inputs.paths, weights) if abs(weight) >= _SHOWN_BELOW]
    steps += [f"  {weight:+.6f}  {name}" for weight, name in sorted(shown, key=lambda item: -abs(item[0]))]
    if len(shown) < len(weights):
        steps.append(f"  ({len(weights) - len(shown)} more weights below {_SHOWN_BELOW:g} in magnitude)")
    provenance: dict[str, object] = {"sigma_rel": sigma_rel, "step": step, "residual": fit.residual}
    return Weighting(weights, provenance, steps)


def _sigma_rel(options: MergeOptions, last_step: int) -> float:
    if options.half_life is not None:
        from composer_swa.time import Time, TimeUnit

        try:
            half_life = Time.from_timestring(options.half_life)
        except (TypeError, ValueError):
            half_life = None
        if half_life is None or half_life.unit is not TimeUnit.BATCH or not half_life.value > 0:
            raise OptionError(f"--half-life takes a number of batches such as 500ba, got {options.half_life!r}")
        sigma_rel = half_life_to_sigma_rel(float(half_life.value), last_step)
        if sigma_rel > MAX_SIGMA_REL:
            longest = math.floor(MAX_SIGMA_REL * last_step * math.log(2.0))
            raise OptionError(
                f"--half-life {options.half_life} at the last snapshot's step {last_step} is sigma_rel {sigma_rel:.4g}, "
                f"longer than the longest power profile ({MAX_SIGMA_REL:.4f}); give at most {longest}ba"
            )
        return sigma_rel
    assert options.sigma_rel is not None
    _check_sigma_rel(options.sigma_rel, "--sigma-rel")
    return options.sigma_rel


def _check_sigma_rel(sigma_rel: float, flag: str) -> None:
    if not 0.0 < sigma_rel <= MAX_SIGMA_REL:
        raise OptionError(
            f"{flag} must lie in (0, {MAX_SIGMA_REL:.4f}] (the longest power profile's length), got {sigma_rel!r}; "
            "EDM2 tracks 0.05 and 0.10"
        )


def _grid(text: str) -> list[float]:
    """``START:STOP:COUNT``, both ends included, as :func:`numpy.linspace` spaces them."""
    parts = text.split(":")
    try:
        start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3 or count < 2 or not start < stop:
            raise ValueError
    except (ValueError, IndexError):
        raise OptionError(
            f"--sweep takes START:STOP:COUNT with START < STOP and COUNT >= 2, such as 0.02:0.20:10, got {text!r}"
        ) from None
    _check_sigma_rel(start, "--sweep's START")
    _check_sigma_rel(stop, "--sweep's STOP")
    return [float(value) for value in np.linspace(start, stop, count)]


def _sweep(options: MergeOptions, inputs: MergeInputs, folder: Path, grid: list[float]) -> Weighting:
    from composer_swa.merging.posthoc import reconstruct

    if inputs.scorer is None:
        raise OptionError("--sweep scores each length on held-out data: give --config run.yaml (its model and data.eval)")
    if options.plot is None:
        raise OptionError("--sweep writes a plot: give --plot PATH.png, or -o (the plot goes beside it)")
    _require_matplotlib()
    score: Callable[[dict[str, object]], float] = inputs.scorer(refresh_batch_norm=True)
    rows = []
    for sigma_rel in grid:
        average = reconstruct(folder, sigma_rel)
        rows.append((sigma_rel, average.residual, score(dict(average.tensors))))
    best = max(rows, key=lambda row: row[2])
    steps = [f"sweep of {len(grid)} lengths read at step {average.step}, scored on data.eval (accuracy, else minus "
             "the loss; batch norm recomputed on data.train where the model has it):",
             "  sigma_rel  residual    score"]  # fmt: skip
    steps += [f"  {s:9.4f}  {r:8.1e}  {m:7.4f}" + ("  <- best" if (s, r, m) == best else "") for s, r, m in rows]
    _plot(rows, options.plot)
    steps.append(f"plot of the score against sigma_rel written to {options.plot}")
    sweep = [{"sigma_rel": s, "residual": r, "score": m} for s, r, m in rows]
    if options.select != "best":
        return Weighting(None, {"sweep": sweep}, steps, output=False)
    chosen = _weighting(inputs, folder, _entries(folder), best[0])
    chosen.provenance["sweep"] = sweep
    return Weighting(chosen.weights, chosen.provenance, [*steps, f"best: sigma_rel {best[0]:.6g}", *chosen.steps])


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise OptionError("--sweep plots with matplotlib, which is not installed: pip install 'composer_swa[plot]'") from None


def _plot(rows: list[tuple[float, float, float]], path: Path) -> None:
    from matplotlib.figure import Figure

    from composer_swa.atomic_files import atomic_write

    figure = Figure(figsize=(5, 3.6))
    axis = figure.add_subplot()
    axis.plot([row[0] for row in rows], [row[2] for row in rows], marker="o")
    axis.set_xlabel("sigma_rel (EMA length relative to the step)")
    axis.set_ylabel("eval score")
    axis.set_title("post-hoc EMA sweep")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=120))
