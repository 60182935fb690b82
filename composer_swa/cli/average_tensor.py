"""``swa-average`` for mergekit's recipes and the per-tensor methods: their options from the flags or the YAML.

Kept apart from the command so that ``swa-average --help`` and plain averages import neither torch
nor the recipe reader.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from composer_swa.merging.methods import METHODS, MergeInputs, MergeMethod, MergeOptions, OptionError

__all__: list[str] = []

_RECIPES = (".yml", ".yaml")


def parse_weights(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 3,1,1, got {text!r}") from None


def flag_options(command: Any) -> MergeOptions:
    """The method's options; ``--weights-from`` is a list of weights unless the method reads the file itself."""
    from composer_swa.merging.weights_files import read_weights_file

    given: list[float] | None = parse_weights(command.weights_text) if command.weights_text else None
    reads_file = command.method is not None and "weights_from" in METHODS[command.method].parameters
    if command.weights_from is not None and not reads_file:
        loaded = read_weights_file(command.weights_from)
        if not isinstance(loaded, list) or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in loaded):
            raise OptionError(f"{command.weights_from}: expected a list of numbers, one weight per input, got {loaded!r}")
        given = [float(w) for w in loaded]
    plot = command.plot
    if plot is None and command.sweep is not None and command.output is not None:
        plot = Path(command.output.rstrip("/")).with_suffix(".sweep.png")
    return MergeOptions(
        given, command.weights_from, not command.no_normalize, command.last_k, command.decay_shape, command.scores,
        command.threshold, command.step, command.sigma_rel, command.half_life, command.sweep, command.select, plot,
    )  # fmt: skip


def is_recipe(inputs: tuple[str, ...]) -> bool:
    """One input that is a YAML file: a mergekit recipe."""
    return len(inputs) == 1 and inputs[0].endswith(_RECIPES) and Path(inputs[0]).is_file()


def from_recipe(path: str, flags: Mapping[str, object]) -> tuple[MergeMethod, tuple[str, ...], MergeOptions, Any]:
    """The method, inputs and options of a recipe; ``flags`` (given on the command line) that a recipe sets are refused."""
    from composer_swa.merging.mergekit_recipe import read_recipe
    from composer_swa.merging.plan import unknown_settings

    given = [flag for flag, value in flags.items() if value]
    if given:
        raise OptionError(f"{path} is a recipe: it sets the method, models and parameters, so {', '.join(given)} "
                          "cannot be given with it")  # fmt: skip
    recipe = read_recipe(path)
    method = METHODS[recipe.method]
    for name in unknown_settings(method, recipe.options):
        warnings.warn(f"merge_method {recipe.method} reads no parameter {name!r}; it is ignored (as mergekit does)", stacklevel=2)
    return method, recipe.paths, recipe.options, recipe


def from_flags(
    method: MergeMethod,
    inputs: tuple[str, ...],
    options: MergeOptions,
    base_model: str | None,
    params: tuple[str, ...],
    seed: int,
) -> tuple[tuple[str, ...], MergeOptions]:
    """The inputs (the base model added if not among them) and options of a per-tensor method from the flags."""
    import yaml

    if method.kernel is None and (base_model or params):
        raise OptionError(
            f"--base-model and --param are read by the per-tensor methods (ties, slerp...), not --method {method.name}"
        )
    settings: dict[str, Any] = {}
    for text in params:
        name, equals, value = text.partition("=")
        if not equals or not name:
            raise OptionError(f"--param takes NAME=VALUE (density=0.5, t=[0,1]), got {text!r}")
        try:
            settings[name.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise OptionError(f"--param {text!r}: {value!r} is not a YAML value") from None
    known = {parameter.name for parameter in method.settings}
    if unknown := sorted(set(settings) - known):
        raise OptionError(f"--method {method.name} has no parameter {unknown}; its parameters: {sorted(known)}")
    input_settings: tuple[dict[str, Any] | None, ...] = ()
    if options.weights is not None:
        if "weight" not in known:
            raise OptionError(f"--weights: --method {method.name} has no per-input weight")
        if len(options.weights) != len(inputs):
            raise OptionError(f"--weights gives {len(options.weights)} weights for {len(inputs)} inputs; one per input")
        input_settings = tuple({"weight": w} for w in options.weights)
    base = None
    if base_model is not None:
        resolved = [str(Path(p).resolve()) for p in inputs]
        if str(Path(base_model).resolve()) in resolved:
            base = resolved.index(str(Path(base_model).resolve()))
        else:
            inputs, base = (*inputs, base_model), len(inputs)
    return inputs, dataclasses.replace(options, base_model=base, settings=settings, input_settings=input_settings, seed=seed)


def run_tensor_method(
    method: MergeMethod, inputs: tuple[str, ...], options: MergeOptions, output: str, dtype: str | None, recipe: Any,
    max_shard_bytes: int, provenance: dict[str, object], parts: Any, target: list[str] | None,
) -> list[Path]:  # fmt: skip
    """Runs a per-tensor method; returns the files written."""
    import torch

    from composer_swa.merging.tensor_merge import merge_tensors

    round_to = getattr(torch, recipe.round_to) if recipe is not None and recipe.round_to else None
    out_dtype = dtype or (recipe.dtype if recipe is not None else None)
    model_files = recipe.model_files if recipe is not None else None
    return merge_tensors(
        method, options, MergeInputs(inputs, target, parts=parts), output, getattr(torch, out_dtype) if out_dtype else None,
        round_to, max_shard_bytes, provenance, model_files,
    )  # fmt: skip
