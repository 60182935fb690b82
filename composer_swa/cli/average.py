"""``swa-average``: average checkpoints of one architecture into safetensors, by any of the recipes."""

from __future__ import annotations

import contextlib
import errno
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

# Only what --help needs is imported here: torch, the readers and the config schemas load when a command runs.
from composer_swa.averaging.recipes import DECAY_SHAPES
from composer_swa.cli.weights_files import layerwise_from_file, read_weights_file

if TYPE_CHECKING:
    from composer_swa.averaging.merge import TensorWeights

__all__ = ["main"]

_FILE = click.Path(path_type=Path, exists=True, dir_okay=False)
_DTYPES = ("bfloat16", "float16", "float32")
_METHODS = ("uniform", "weighted", "layerwise", "lawa", "decay", "greedy", "soce")
_ORDERED = ("lawa", "decay")  # the methods that weigh inputs by position, oldest first
_PLAIN = ("uniform", "weighted", "layerwise", "lawa", "decay")  # weights known without a model
_EXAMPLES = """\b
Examples:
  swa-average run/ep8.pt run/ep9.pt run/ep10.pt -o averaged.safetensors
  swa-average a.safetensors b.safetensors --weights 3,1 -o soup/
  swa-average ckpt/*.pt --method lawa --last-k 5 -o lawa.safetensors  # put in training-step order
  swa-average ckpt/*.pt --method decay --decay-shape 1-sqrt -o merged/
  swa-average ft/*.safetensors --method greedy --config examples/mnist1d_swa.yaml -o greedy.safetensors
  swa-average m1/ m2/ m3/ --method soce --scores scores.csv -o soce/
  swa-average a.safetensors b.safetensors --dry-run       # compatibility report and cosine similarity
"""


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _parse_weights(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 3,1,1, got {text!r}") from None


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    click.echo(f"warning: {message}", err=True)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Warnings (e.g. a wrapper prefix stripped from an input) as one ``warning: ...`` line each."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        yield


@click.command(epilog=_EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    help="A .safetensors file, or a folder (an existing one, a name without a suffix, or ending in '/'): "
    "model.safetensors, or shards with an index. It must not be one of the inputs.",
)
@click.option("--method", type=click.Choice(_METHODS), default=None, help="Default: weighted with --weights, else uniform.")
@click.option("--weights", "weights_text", help="One weight per input: 3,1,1.")
@click.option(
    "--weights-from",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="YAML/JSON: a list of weights, or layer-wise rules.",
)
@click.option("--no-normalize", is_flag=True, help="Use --weights as given instead of dividing by their sum.")
@click.option("--last-k", type=int, help="lawa: average the last K inputs (oldest first, see --keep-order).")
@click.option("--decay-shape", type=click.Choice(sorted(DECAY_SHAPES)), default="1-sqrt", show_default=True)
@click.option(
    "--keep-order",
    is_flag=True,
    help="lawa, decay: take the inputs oldest first as given. Without it composer_swa checkpoints and exports are "
    "put in the order of the training step stored in them, and other inputs whose order goes backwards "
    "(ep10 before ep2) are refused.",
)
@click.option("--scores", type=_FILE, help="soce: CSV candidate,<category>,...")
@click.option("--threshold", type=float, default=0.5, show_default=True, help="soce: mean-correlation cut for categories.")
@click.option("--step", type=float, default=0.1, show_default=True, help="soce: simplex grid step.")
@click.option(
    "--config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A swa-train config: its model and data score soups (data.eval) and recompute batch norm (data.train).",
)
@click.option("--dtype", type=click.Choice(_DTYPES), help="Output dtype of floating tensors (default: the inputs').")
@click.option("--union", is_flag=True, help="Average each key over the inputs that have it.")
@click.option("--intersection", is_flag=True, help="Keep only keys every input has.")
@click.option("--max-shard-size", default="5GB", show_default=True, help="Shard cap for a folder output: 500MB, 5GB.")
@click.option("--dry-run", is_flag=True, help="Print the compatibility report and cosine similarities; write nothing.")
def main(
    inputs: tuple[str, ...],
    output: str | None,
    method: str | None,
    weights_text: str | None,
    weights_from: Path | None,
    no_normalize: bool,
    last_k: int | None,
    decay_shape: str,
    keep_order: bool,
    scores: Path | None,
    threshold: float,
    step: float,
    config: Path | None,
    dtype: str | None,
    union: bool,
    intersection: bool,
    max_shard_size: str,
    dry_run: bool,
) -> None:
    """Average the checkpoints INPUT... (safetensors, sharded index, model folder, .pt/.bin, composer_swa checkpoint)."""
    if union and intersection:
        _fail("--union and --intersection contradict each other: give one (union averages each key over the inputs "
              "that have it, intersection keeps only the keys all have)")  # fmt: skip
    keys = "union" if union else "intersection" if intersection else "strict"
    try:
        _average(inputs, output, method, weights_text, weights_from, no_normalize, last_k, decay_shape, keep_order,
                 scores, threshold, step, config, dtype, keys, max_shard_size, dry_run)  # fmt: skip
    except ValueError as error:  # SourceError, CheckpointError, IncompatibleCheckpoints and ConfigError among them
        _fail(str(error))
    except OSError as error:  # a full disk, a folder that cannot be written: what was written is removed
        if error.errno == errno.ENOSPC:
            _fail(f"no space left on the device writing -o {output!r}; nothing was left behind. Free space, or choose "
                  "another output")  # fmt: skip
        _fail(f"{error.strerror or error}: {error.filename!r}" if error.filename else str(error))


@_warnings_as_lines()
def _average(
    inputs: tuple[str, ...], output_text: str | None, method: str | None, weights_text: str | None,
    weights_from: Path | None, no_normalize: bool, last_k: int | None, decay_shape: str, keep_order: bool,
    scores: Path | None, threshold: float, step: float, config: Path | None, dtype: str | None, keys: Any,
    max_shard_size: str, dry_run: bool,
) -> None:  # fmt: skip
    # Plain safetensors averages with known weights run on NumPy and never import torch (see numpy_average).
    from composer_swa.averaging import recipes
    from composer_swa.averaging.numpy_average import PlainSource, average_safetensors, is_plain_safetensors
    from composer_swa.averaging.output import check_output, removed_on_failure

    if dry_run:
        _dry_run(inputs, keys)
        return
    if output_text is None:
        raise click.UsageError("give -o OUTPUT (a .safetensors file or a folder), or --dry-run")
    output = check_output(output_text, inputs)
    given: list[float] | None = _parse_weights(weights_text) if weights_text else None
    if weights_from is not None and method != "layerwise":
        loaded = read_weights_file(weights_from)
        if not isinstance(loaded, list) or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in loaded):
            raise click.UsageError(f"{weights_from}: expected a list of numbers, one weight per input, got {loaded!r}")
        given = [float(w) for w in loaded]
    method = method or ("weighted" if given else "uniform")
    if method in _ORDERED:
        from composer_swa.averaging.order import chronological

        ordered, note = chronological(inputs, method, keep_order)
        inputs = tuple(ordered)
        click.echo(note)
    count = len(inputs)
    weights: TensorWeights | None = None
    provenance: dict[str, object] = {"method": method}
    # Checked where needed, so that usage errors come first as before.
    plain = lambda: config is None and method in _PLAIN and is_plain_safetensors(inputs)  # noqa: E731
    parts = None
    if config is not None:
        from composer_swa.cli.average_parts import check_fits_model, run_parts

        parts = run_parts(config)
    # With --config the inputs must fit its model: a wrapper prefix is stripped only to fit its keys.
    target = list(parts.model.state_dict()) if parts is not None else None
    if parts is not None:
        check_fits_model(inputs, keys, parts.model, config)
    if method == "weighted":
        if given is None:
            raise click.UsageError("--method weighted needs --weights or --weights-from")
        weights = recipes.normalize_weights(given, normalize=not no_normalize)
    elif method == "layerwise":
        weights = layerwise_from_file(weights_from, inputs, given or [1.0] * count, target, PlainSource if plain() else None)
    elif method == "lawa":
        weights = recipes.last_k_weights(count, last_k if last_k is not None else count)
    elif method == "decay":
        weights = recipes.decay_emulating_weights(count, decay_shape)
    elif method == "greedy":
        from composer_swa.averaging.soups import greedy_soup
        from composer_swa.cli.average_parts import evaluator, read_all

        if parts is None:
            raise click.UsageError("--method greedy needs --config naming the model and its held-out data (data.eval)")
        candidates = read_all(inputs, target)
        result = greedy_soup(candidates, evaluator(parts))
        for line in result.steps:
            click.echo(f"greedy: {line}")
        weights = [1.0 / len(result.chosen) if k in result.chosen else 0.0 for k in range(count)]
        provenance |= {"chosen": result.chosen, "held_out": result.score, "individual": result.individual_scores}
    elif method == "soce":
        from composer_swa.averaging.soups import read_category_scores, soce, weighted_soup
        from composer_swa.cli.average_parts import evaluator, read_all

        if scores is None:
            raise click.UsageError("--method soce needs --scores FILE.csv (candidate,<category>,... one row per input)")
        names, categories, table = read_category_scores(scores)
        if len(names) != count:
            raise click.UsageError(
                f"{scores} has {len(names)} candidates, {count} inputs were given; one row per input, in order"
            )
        evaluate = None
        if parts is not None:
            score_soup = evaluator(parts)
            candidates = read_all(inputs, target)
            evaluate = lambda w: score_soup(weighted_soup(candidates, w))  # noqa: E731
        result_soce = soce(categories, table, evaluate, threshold, step)
        for line in result_soce.steps:
            click.echo(f"soce: {line}")
        weights = result_soce.weights
        provenance |= {"experts": result_soce.experts, "aggregate": result_soce.aggregate}
    if weights is not None and not callable(weights):
        provenance["weights"] = list(weights)
    max_shard_bytes = _size(max_shard_size)
    with removed_on_failure(output):  # a full disk, or a failed batch-norm pass: no partial output stays
        # The text as given: a trailing '/' says folder, which a Path forgets.
        written = None
        if plain():
            written = average_safetensors(inputs, output_text, weights, dtype, keys, max_shard_bytes, provenance)
        if written is None:  # torch.save inputs, float8 tensors, soups or --config
            import torch

            from composer_swa.averaging.merge import average_checkpoints

            out_dtype = getattr(torch, dtype) if dtype else None
            written = average_checkpoints(inputs, output_text, weights, out_dtype, keys, max_shard_bytes, provenance, target)
        if parts is not None:
            from composer_swa.averaging.finish import recompute_batch_norm_in_output

            if (samples := recompute_batch_norm_in_output(written, parts.model, parts.train_dataloader)) is not None:
                click.echo(f"batch-norm statistics recomputed over {samples} samples of data.train")
    click.echo(f"wrote {', '.join(str(path) for path in written)} ({method} over {count} inputs)")


def _dry_run(inputs: tuple[str, ...], keys: Any) -> None:
    """The compatibility report (every key, shape and dtype difference, by tensor name) and cosine similarities."""
    from composer_swa.averaging.inputs import open_sources
    from composer_swa.averaging.merge import check_compatibility, cosine_similarities

    sources = open_sources(inputs)
    report = check_compatibility(sources, keys)
    for source in sources:
        source.close()
    click.echo(report.text(list(inputs)))
    click.echo("cosine similarity of the floating weights" + (" (tensors that differ left out):" if report.differences else ":"))
    for k, row in enumerate(cosine_similarities(inputs, keys if keys != "strict" else "intersection")):
        click.echo(f"  [{k}] " + "  ".join(f"{value:.6f}" for value in row))
    if report.differences:
        sys.exit(2)


def _size(text: str) -> int:
    units = {"KB": 1000, "MB": 1000**2, "GB": 1000**3, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "B": 1}
    upper = text.strip().upper()
    for unit, factor in units.items():
        if upper.endswith(unit):
            try:
                return int(float(upper[: -len(unit)]) * factor)
            except ValueError:
                break
    raise click.BadParameter(f"--max-shard-size takes a size such as 500MB or 5GB, got {text!r}")


if __name__ == "__main__":
    main()
