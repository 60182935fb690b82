"""``swa-average --config``: the config's model and data, checked against the inputs, and a held-out scorer.

Kept apart from the command so that ``swa-average --help`` and plain averages never import the
config schemas or the trainer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import torch

from composer_swa.averaging.model_average import load_tracked_weights, named_state_tensors
from composer_swa.merging.compatibility import IncompatibleCheckpoints, KeyPolicy, check_compatibility
from composer_swa.merging.inputs import open_sources

if TYPE_CHECKING:
    from composer_swa.config import RunParts

__all__: list[str] = []

_LISTED = 10  # differences shown before "... and N more"


def run_parts(config: Path | None) -> RunParts | None:
    """The model and data of a ``swa-train`` config (its algorithms dropped), or ``None`` without one."""
    if config is None:
        return None
    from composer_swa.config import build_run, load_config

    loaded = load_config(config)
    loaded.algorithms = []
    return build_run(loaded, config.resolve().parent)


def check_fits_model(inputs: Sequence[str], keys: KeyPolicy, model: torch.nn.Module, config: Path | None) -> None:
    """Refuses inputs that differ from each other, or from the config's model, before any is loaded into it.

    Raises:
        IncompatibleCheckpoints: Listing every missing or extra tensor and every shape difference.
    """
    sources = open_sources(inputs, list(model.state_dict()))
    try:
        report = check_compatibility(sources, keys)
    finally:
        for source in sources:
            source.close()
    if report.differences:
        raise IncompatibleCheckpoints(
            f"the {len(inputs)} inputs do not match ({len(report.differences)} differences):\n" + report.text(list(inputs))
        )
    expected = {name: tuple(tensor.shape) for name, tensor in named_state_tensors(model)}  # a tied tensor once
    problems = [f"{name!r} is in the model but not in the inputs" for name in expected if name not in report.infos]
    problems += [f"{name!r} is in the inputs but not in the model" for name in report.infos if name not in expected]
    problems += [
        f"{name!r} has shape {list(info.shape)} in the inputs, {list(expected[name])} in the model"
        for name, info in report.infos.items()
        if name in expected and info.shape != expected[name]
    ]
    if problems:
        more = f"\n  ... and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
        raise IncompatibleCheckpoints(
            f"--config {str(config)!r} builds a model that does not match the inputs ({len(problems)} differences); "
            "give the config the inputs were trained with:\n  " + "\n  ".join(problems[:_LISTED]) + more
        )


def evaluator(parts: RunParts, refresh_batch_norm: bool = False) -> Callable[[dict[str, torch.Tensor]], float]:
    """Held-out score of a state dict: accuracy on the config's eval data (else minus the loss); with
    ``refresh_batch_norm``, batch-norm statistics are first recomputed on its training data, as the output's are."""
    from composer_swa.averaging.bn import batch_norm_layers, recompute_batch_norm
    from composer_swa.trainer import Trainer

    if parts.eval_dataloader is None:
        raise click.UsageError("--config needs a data.eval section to score soups")
    trainer = Trainer(
        parts.model, parts.train_dataloader, "1ba", eval_dataloader=parts.eval_dataloader, loggers=[], progress_bar=False
    )

    def evaluate(weights: dict[str, torch.Tensor]) -> float:
        load_tracked_weights(parts.model, weights)
        if refresh_batch_norm and batch_norm_layers(parts.model):
            recompute_batch_norm(parts.model, parts.train_dataloader)
        metrics: dict[str, Any] = trainer.eval()
        return float(metrics.get("eval/accuracy", -metrics["eval/loss"]))

    return evaluate


def dry_run(inputs: tuple[str, ...], keys: KeyPolicy) -> None:
    """The compatibility report (every key, shape and dtype difference, by tensor name) and cosine similarities."""
    from composer_swa.merging.compatibility import check_compatibility
    from composer_swa.merging.inputs import open_sources
    from composer_swa.merging.merge import cosine_similarities

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
