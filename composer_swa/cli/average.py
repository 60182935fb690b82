"""``swa-average``: average checkpoints of one architecture into safetensors, by any of the recipes."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import torch
import yaml

from composer_swa.averaging.inputs import open_sources
from composer_swa.averaging.merge import (
    IncompatibleCheckpoints,
    TensorWeights,
    average_checkpoints,
    check_compatibility,
    cosine_similarities,
    normalize_weights,
)
from composer_swa.averaging.recipes import DECAY_SHAPES, decay_emulating_weights, last_k_weights, layerwise_weights
from composer_swa.averaging.soups import greedy_soup, read_category_scores, soce, weighted_soup
from composer_swa.averaging.sources import SourceError
from composer_swa.checkpoint import CheckpointError
from composer_swa.config import ConfigError

__all__ = ["main"]

_FILE = click.Path(path_type=Path, exists=True, dir_okay=False)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_METHODS = ("uniform", "weighted", "layerwise", "lawa", "decay", "greedy", "soce")
_EXAMPLES = """\b
Examples:
  swa-average run/ep8.pt run/ep9.pt run/ep10.pt -o averaged.safetensors
  swa-average a.safetensors b.safetensors --weights 3,1 -o soup/
  swa-average ckpt/*.pt --method lawa --last-k 5 -o lawa.safetensors
  swa-average ckpt/*.pt --method decay --decay-shape 1-sqrt -o merged/
  swa-average ft/*.safetensors --method greedy --config examples/mnist1d_swa.yaml -o greedy.safetensors
  swa-average m1/ m2/ m3/ --method soce --scores scores.csv -o soce/
  swa-average a.safetensors b.safetensors --dry-run       # compatibility report and cosine similarity
"""


def _fail(message: str) -> None:
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


def _parse_weights(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 3,1,1, got {text!r}") from None


def _run_parts(config: Path | None, method: str) -> Any:
    if config is None:
        return None
    from composer_swa.config import build_run, load_config

    loaded = load_config(config)
    loaded.algorithms = []
    return build_run(loaded, config.resolve().parent)


def _evaluator(parts: Any) -> Any:
    """Held-out score of a state dict: accuracy on the config's eval data (else minus the loss)."""
    from composer_swa.trainer import Trainer

    if parts.eval_dataloader is None:
        raise click.UsageError("--config needs a data.eval section to score soups")
    trainer = Trainer(
        parts.model, parts.train_dataloader, "1ba", eval_dataloader=parts.eval_dataloader, loggers=[], progress_bar=False
    )

    def evaluate(weights: dict[str, torch.Tensor]) -> float:
        parts.model.load_state_dict(weights)
        metrics = trainer.eval()
        return metrics.get("eval/accuracy", -metrics["eval/loss"])

    return evaluate


def _layerwise(spec_path: Path | None, inputs: tuple[str, ...], default: list[float], target: list[str] | None) -> TensorWeights:
    if spec_path is None:
        raise click.UsageError("--method layerwise needs --weights-from FILE with 'rules' and/or 'gradients'")
    spec = yaml.safe_load(spec_path.read_text()) or {}
    if not isinstance(spec, dict):
        raise click.UsageError(f"{spec_path}: expected a mapping with 'default', 'rules' and/or 'gradients'")
    sources = open_sources(inputs, target)
    names = list(sources[0].infos)
    for source in sources:
        source.close()
    rules = [(str(rule["pattern"]), [float(w) for w in rule["weights"]]) for rule in spec.get("rules", [])]
    return layerwise_weights(names, len(inputs), spec.get("default", default), rules, spec.get("gradients"))


@click.command(epilog=_EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="A .safetensors file, or a folder (sharded, with index).")
@click.option("--method", type=click.Choice(_METHODS), default=None, help="Default: weighted with --weights, else uniform.")
@click.option("--weights", "weights_text", help="One weight per input: 3,1,1.")
@click.option(
    "--weights-from",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="YAML/JSON: a list of weights, or layer-wise rules.",
)
@click.option("--no-normalize", is_flag=True, help="Use --weights as given instead of dividing by their sum.")
@click.option("--last-k", type=int, help="lawa: average the last K inputs (inputs oldest first).")
@click.option("--decay-shape", type=click.Choice(sorted(DECAY_SHAPES)), default="1-sqrt", show_default=True)
@click.option("--scores", type=_FILE, help="soce: CSV candidate,<category>,...")
@click.option("--threshold", type=float, default=0.5, show_default=True, help="soce: mean-correlation cut for categories.")
@click.option("--step", type=float, default=0.1, show_default=True, help="soce: simplex grid step.")
@click.option(
    "--config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A swa-train config: its model and data score soups (data.eval) and recompute batch norm (data.train).",
)
@click.option("--dtype", type=click.Choice(sorted(_DTYPES)), help="Output dtype of floating tensors (default: the inputs').")
@click.option("--union", "keys", flag_value="union", help="Average each key over the inputs that have it.")
@click.option("--intersection", "keys", flag_value="intersection", help="Keep only keys every input has.")
@click.option("--max-shard-size", default="5GB", show_default=True, help="Shard cap for a folder output: 500MB, 5GB.")
@click.option("--dry-run", is_flag=True, help="Print the compatibility report and cosine similarities; write nothing.")
def main(
    inputs: tuple[str, ...],
    output: Path | None,
    method: str | None,
    weights_text: str | None,
    weights_from: Path | None,
    no_normalize: bool,
    last_k: int | None,
    decay_shape: str,
    scores: Path | None,
    threshold: float,
    step: float,
    config: Path | None,
    dtype: str | None,
    keys: str | None,
    max_shard_size: str,
    dry_run: bool,
) -> None:
    """Average the checkpoints INPUT... (safetensors, sharded index, model folder, .pt/.bin, composer_swa checkpoint)."""
    try:
        _average(inputs, output, method, weights_text, weights_from, no_normalize, last_k, decay_shape, scores,
                 threshold, step, config, dtype, keys or "strict", max_shard_size, dry_run)  # fmt: skip
    except (SourceError, CheckpointError, IncompatibleCheckpoints, ConfigError, ValueError, FileNotFoundError) as error:
        _fail(str(error))


@_warnings_as_lines()
def _average(
    inputs: tuple[str, ...], output: Path | None, method: str | None, weights_text: str | None, weights_from: Path | None,
    no_normalize: bool, last_k: int | None, decay_shape: str, scores: Path | None, threshold: float, step: float,
    config: Path | None, dtype: str | None, keys: Any, max_shard_size: str, dry_run: bool,
) -> None:  # fmt: skip
    if dry_run:
        sources = open_sources(inputs)
        report = check_compatibility(sources, keys)
        for source in sources:
            source.close()
        click.echo(report.text(list(inputs)))
        click.echo("cosine similarity of the floating weights:")
        for k, row in enumerate(cosine_similarities(inputs, keys if keys != "strict" else "intersection")):
            click.echo(f"  [{k}] " + "  ".join(f"{value:.6f}" for value in row))
        if report.differences:
            sys.exit(2)
        return
    if output is None:
        raise click.UsageError("give -o OUTPUT (a .safetensors file or a folder), or --dry-run")
    given: list[float] | None = _parse_weights(weights_text) if weights_text else None
    if weights_from is not None and method != "layerwise":
        loaded = yaml.safe_load(weights_from.read_text())
        if not isinstance(loaded, list):
            raise click.UsageError(f"{weights_from}: expected a list of weights, one per input")
        given = [float(w) for w in loaded]
    method = method or ("weighted" if given else "uniform")
    count = len(inputs)
    weights: TensorWeights | None = None
    provenance: dict[str, object] = {"method": method}
    parts = _run_parts(config, method)
    # With --config the inputs must fit its model: a wrapper prefix is stripped only to fit its keys.
    target = list(parts.model.state_dict()) if parts is not None else None
    if method == "weighted":
        if given is None:
            raise click.UsageError("--method weighted needs --weights or --weights-from")
        weights = normalize_weights(given, normalize=not no_normalize)
    elif method == "layerwise":
        weights = _layerwise(weights_from, inputs, given or [1.0] * count, target)
    elif method == "lawa":
        weights = last_k_weights(count, last_k if last_k is not None else count)
    elif method == "decay":
        weights = decay_emulating_weights(count, decay_shape)
    elif method == "greedy":
        if parts is None:
            raise click.UsageError("--method greedy needs --config naming the model and its held-out data (data.eval)")
        candidates = _read_all(inputs, target)
        result = greedy_soup(candidates, _evaluator(parts))
        for line in result.steps:
            click.echo(f"greedy: {line}")
        weights = [1.0 / len(result.chosen) if k in result.chosen else 0.0 for k in range(count)]
        provenance |= {"chosen": result.chosen, "held_out": result.score, "individual": result.individual_scores}
    elif method == "soce":
        if scores is None:
            raise click.UsageError("--method soce needs --scores FILE.csv (candidate,<category>,... one row per input)")
        names, categories, table = read_category_scores(scores)
        if len(names) != count:
            raise click.UsageError(
                f"{scores} has {len(names)} candidates, {count} inputs were given; one row per input, in order"
            )
        evaluate = None
        if parts is not None:
            score_soup = _evaluator(parts)
            candidates = _read_all(inputs, target)
            evaluate = lambda w: score_soup(weighted_soup(candidates, w))  # noqa: E731
        result_soce = soce(categories, table, evaluate, threshold, step)
        for line in result_soce.steps:
            click.echo(f"soce: {line}")
        weights = result_soce.weights
        provenance |= {"experts": result_soce.experts, "aggregate": result_soce.aggregate}
    if weights is not None and not callable(weights):
        provenance["weights"] = list(weights)
    written = average_checkpoints(
        inputs, output, weights, _DTYPES[dtype] if dtype else None, keys, _size(max_shard_size), provenance, target
    )
    if parts is not None:
        from composer_swa.averaging.finish import recompute_batch_norm_in_output

        if (samples := recompute_batch_norm_in_output(written, parts.model, parts.train_dataloader)) is not None:
            click.echo(f"batch-norm statistics recomputed over {samples} samples of data.train")
    click.echo(f"wrote {', '.join(str(path) for path in written)} ({method} over {count} inputs)")


def _read_all(inputs: tuple[str, ...], target: list[str] | None) -> list[dict[str, torch.Tensor]]:
    sources = open_sources(inputs, target)
    try:
        return [
            {name: source.read(name).reshape(info.shape).clone() for name, info in source.infos.items()} for source in sources
        ]
    finally:
        for source in sources:
            source.close()


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
