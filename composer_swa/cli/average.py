"""``swa-average``: average checkpoints of one architecture into safetensors, by any registered merge method."""

from __future__ import annotations

import contextlib
import errno
import functools
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

# Only what --help needs is imported here: torch, the readers and the config schemas load when a command runs.
from composer_swa.merging.methods import METHODS, MergeInputs, OptionError
from composer_swa.merging.recipes import DECAY_SHAPES

if TYPE_CHECKING:
    from composer_swa.merging.compatibility import KeyPolicy

__all__ = ["main"]

_FILE = click.Path(path_type=Path, exists=True, dir_okay=False)
_DTYPES = ("bfloat16", "float16", "float32")
_EXAMPLES = """\b
Examples:
  swa-average run/ep8.pt run/ep9.pt run/ep10.pt -o averaged.safetensors
  swa-average a.safetensors b.safetensors --weights 3,1 -o soup/
  swa-average ckpt/*.pt --method lawa --last-k 5 -o lawa.safetensors  # put in training-step order
  swa-average ckpt/*.pt --method decay --decay-shape 1-sqrt -o merged/
  swa-average ft/*.safetensors --method greedy --config examples/mnist1d_swa.yaml -o greedy.safetensors
  swa-average m1/ m2/ m3/ --method soce --scores scores.csv -o soce/
  swa-average run/posthoc_ema --method posthoc --sigma-rel 0.07 -o ema.safetensors
  swa-average run/posthoc_ema --method posthoc --sweep 0.02:0.20:10 --config run.yaml --select best -o ema.safetensors
  swa-average base/ a/ b/ --method ties --base-model base/ --param density=0.5 --param weight=1 -o ties/
  swa-average recipe.yml -o merged/                         # a mergekit recipe, as it is
  swa-average a.safetensors b.safetensors --dry-run       # compatibility report and cosine similarity
"""


@dataclass(frozen=True)
class _Command:
    """The command line as given (the method's own options become a :class:`MergeOptions`)."""

    inputs: tuple[str, ...]
    output: str | None
    method: str | None
    weights_text: str | None
    weights_from: Path | None
    no_normalize: bool
    last_k: int | None
    decay_shape: str
    keep_order: bool
    scores: Path | None
    threshold: float
    step: float
    sigma_rel: float | None
    half_life: str | None
    sweep: str | None
    select: str | None
    plot: Path | None
    config: Path | None
    base_model: str | None
    param: tuple[str, ...]
    seed: int
    dtype: str | None
    keys: KeyPolicy
    max_shard_size: str
    dry_run: bool


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


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
@click.option("--method", type=click.Choice(list(METHODS)), default=None, help="Default: weighted with --weights, else uniform.")
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
@click.option("--sigma-rel", type=float, help="posthoc: the EMA length to reconstruct from SNAPSHOT_DIR, in (0, 0.3003].")
@click.option("--half-life", help="posthoc: ... or its half-life at the last snapshot's step: 500ba.")
@click.option("--sweep", help="posthoc: score START:STOP:COUNT lengths (0.02:0.20:10) on --config's data.eval, and plot.")
@click.option("--select", type=click.Choice(["best"]), help="posthoc: write the --sweep's best length to -o.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), help="posthoc: the --sweep's PNG (default: beside -o).")
@click.option(
    "--config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A swa-train config: its model and data score soups (data.eval) and recompute batch norm (data.train).",
)
@click.option("--base-model", help="Per-tensor methods: the base model (an input, or added as one).")
@click.option("--param", multiple=True, help="Per-tensor methods: NAME=VALUE, a mergekit parameter (density=0.5, t=[0,1]).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random methods (dare_*, della*): the masks' seed.")
@click.option("--dtype", type=click.Choice(_DTYPES), help="Output dtype of floating tensors (default: the inputs').")
@click.option("--union", is_flag=True, help="Average each key over the inputs that have it.")
@click.option("--intersection", is_flag=True, help="Keep only keys every input has.")
@click.option("--max-shard-size", default="5GB", show_default=True, help="Shard cap for a folder output: 500MB, 5GB.")
@click.option("--dry-run", is_flag=True, help="Print the compatibility report and cosine similarities; write nothing.")
def main(**given: Any) -> None:
    """Average or merge the checkpoints INPUT... (safetensors, sharded index, model folder, .pt/.bin, composer_swa
    checkpoint), or run a mergekit recipe (one INPUT.yml)."""
    union, intersection = given.pop("union"), given.pop("intersection")
    if union and intersection:
        _fail("--union and --intersection contradict each other: give one (union averages each key over the inputs "
              "that have it, intersection keeps only the keys all have)")  # fmt: skip
    command = _Command(**given, keys="union" if union else "intersection" if intersection else "strict")
    try:
        _average(command)
    except ValueError as error:  # SourceError, CheckpointError, IncompatibleCheckpoints and ConfigError among them
        _fail(str(error))
    except OSError as error:  # a full disk, a folder that cannot be written: what was written is removed
        if error.errno == errno.ENOSPC:
            _fail(f"no space left on the device writing -o {command.output!r}; nothing was left behind. Free space, or "
                  "choose another output")  # fmt: skip
        _fail(f"{error.strerror or error}: {error.filename!r}" if error.filename else str(error))


@_warnings_as_lines()
def _average(command: _Command) -> None:
    try:
        _run(command)
    except OptionError as error:
        raise click.UsageError(str(error)) from None


def _run(command: _Command) -> None:
    # Plain safetensors averages with known weights run on NumPy and never import torch (see numpy_average).
    from composer_swa.cli.average_tensor import flag_options, from_flags, from_recipe, is_recipe, run_tensor_method
    from composer_swa.merging.numpy_average import PlainSource, average_safetensors, is_plain_safetensors
    from composer_swa.merging.output import check_output, removed_on_failure

    recipe = None
    if is_recipe(command.inputs):
        flags = {"--method": command.method, "--weights": command.weights_text, "--weights-from": command.weights_from,
                 "--base-model": command.base_model, "--param": command.param}  # fmt: skip
        method, given, options, recipe = from_recipe(command.inputs[0], flags)
    else:
        options = flag_options(command)
        method = METHODS[command.method or ("linear" if options.weights else "uniform")]
        given = command.inputs
        if method.kernel is not None or command.base_model or command.param:
            given, options = from_flags(method, given, options, command.base_model, command.param, command.seed)
    if command.dry_run:
        from composer_swa.cli.average_parts import dry_run

        dry_run(given, command.keys)
        return
    plotted_only = command.sweep is not None and command.select is None and command.plot is not None
    if command.output is None and not plotted_only:
        raise click.UsageError("give -o OUTPUT (a .safetensors file or a folder), or --dry-run")
    output = check_output(command.output, given) if command.output is not None else None
    inputs = method.expand(given) if method.expand is not None else given
    if method.ordered:
        from composer_swa.merging.order import chronological

        ordered, note = chronological(inputs, method.name, command.keep_order)
        inputs = tuple(ordered)
        click.echo(note)
    parts = None
    if command.config is not None:
        from composer_swa.cli.average_parts import check_fits_model, evaluator, run_parts

        parts = run_parts(command.config)
    # With --config the inputs must fit its model: a wrapper prefix is stripped only to fit its keys.
    target = list(parts.model.state_dict()) if parts is not None else None
    if parts is not None:
        check_fits_model(inputs, command.keys, parts.model, command.config)
    # Checked when first needed, so that usage errors come first.
    plain = functools.cache(lambda: command.config is None and not method.needs_torch and is_plain_safetensors(inputs))

    def opener(path: Path) -> Any:
        from composer_swa.merging.sources import open_source

        return PlainSource(path) if plain() else open_source(path)

    scorer = functools.partial(evaluator, parts) if parts is not None else None
    if method.weigh is None:  # a per-tensor method: it writes the output itself
        assert output is not None and command.output is not None
        with removed_on_failure(output):
            recorded: dict[str, object] = {"method": method.name}
            if recipe is not None:
                recorded["recipe"] = Path(command.inputs[0]).read_text(encoding="utf-8")
            merged = run_tensor_method(method, inputs, options, command.output, command.dtype, recipe,
                                       _size(command.max_shard_size), recorded, parts, target)  # fmt: skip
            if parts is not None:
                _refresh_batch_norm(merged, parts)
        click.echo(f"wrote {', '.join(str(path) for path in merged)} ({method.name} over {len(inputs)} inputs)")
        return
    weighting = method.weigh(options, MergeInputs(inputs, target, opener, scorer))
    for line in weighting.steps:
        click.echo(f"{method.name}: {line}")
    if not weighting.output:
        return
    if output is None or command.output is None:  # --sweep --plot without -o, and a method that writes
        raise click.UsageError("give -o OUTPUT (a .safetensors file or a folder), or --dry-run")
    weights = weighting.weights
    provenance: dict[str, object] = {"method": method.name, **weighting.provenance}
    if weights is not None and not callable(weights):
        provenance["weights"] = list(weights)
    max_shard_bytes = _size(command.max_shard_size)
    with removed_on_failure(output):  # a full disk, or a failed batch-norm pass: no partial output stays
        # The text as given: a trailing '/' says folder, which a Path forgets.
        written = None
        if plain():
            written = average_safetensors(inputs, command.output, weights, command.dtype, command.keys, max_shard_bytes,
                                          provenance)  # fmt: skip
        if written is None:  # torch.save inputs, float8 tensors, soups or --config
            import torch

            from composer_swa.merging.merge import average_checkpoints

            out_dtype = getattr(torch, command.dtype) if command.dtype else None
            written = average_checkpoints(inputs, command.output, weights, out_dtype, command.keys, max_shard_bytes,
                                          provenance, target)  # fmt: skip
        if parts is not None:
            _refresh_batch_norm(written, parts)
    click.echo(f"wrote {', '.join(str(path) for path in written)} ({method.name} over {len(inputs)} inputs)")


def _refresh_batch_norm(written: list[Path], parts: Any) -> None:
    from composer_swa.merging.finish import recompute_batch_norm_in_output

    if (samples := recompute_batch_norm_in_output(written, parts.model, parts.train_dataloader)) is not None:
        click.echo(f"batch-norm statistics recomputed over {samples} samples of data.train")


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
