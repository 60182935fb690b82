"""mergekit's YAML recipes, read as they are: ``swa-average RECIPE.yml -o OUT``.

Read: ``merge_method``, ``base_model``, ``models`` (each ``model`` and its ``parameters``) or
``slices`` (each with ``sources``: ``model``, ``layer_range``, ``parameters``; and the slice's own
``parameters`` and ``base_model``), top-level ``parameters``, ``dtype`` (inputs are rounded to it
before merging, as mergekit loads them), ``out_dtype`` (the output's; default ``dtype``, else the
inputs'), and ``tokenizer_source`` (``base`` or a model: whose folder's tokenizer and config files the
output gets; default the base model's, else the first model's). Models are local paths (folders,
safetensors, checkpoints), relative to the working directory as in mergekit. Any other key, and
what we do not do (``modules``, ``tokenizer``, ``chat_template``, ``tokenizer_source: union``,
LoRA ``model+adapter`` references, ``residual_weight``), is refused by name, every one at once.
Torch-free.

Example:
    >>> recipe = parse_recipe({"merge_method": "ties", "base_model": "base", "parameters": {"density": 0.5},
    ...                        "models": [{"model": "a", "parameters": {"weight": 1.0}}, {"model": "b"}]})
    >>> recipe.method, recipe.paths, recipe.options.base_model, recipe.options.input_settings
    ('ties', ('a', 'b', 'base'), 2, ({'weight': 1.0}, None, None))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer_swa.merging.methods import METHODS, MergeOptions
from composer_swa.merging.plan import OutputSlice, SliceSource

__all__ = ["Recipe", "RecipeError", "parse_recipe", "read_recipe"]

_KEYS = {"merge_method", "base_model", "models", "slices", "parameters", "dtype", "out_dtype", "tokenizer_source"}
_REFUSED = {
    "modules": "per-module merges (multimodal models) are not supported; use models or slices",
    "tokenizer": "tokenizer surgery is not supported; use tokenizer_source: base or a model",
    "chat_template": "chat templates are not written; copy one into the output folder",
}
_DTYPES = ("float32", "bfloat16", "float16", "float64")


class RecipeError(ValueError):
    """The recipe cannot be run as it is; the message names every key or value at fault."""


@dataclass
class Recipe:
    """A recipe, as swa-average runs it: the method, its input paths (the base last if not a model) and options."""

    method: str
    paths: tuple[str, ...]
    options: MergeOptions
    dtype: str | None = None  # the output's floating dtype
    round_to: str | None = None  # inputs are rounded to it first
    model_files: int | None = None  # whose folder's config and tokenizer files the output gets
    warnings: list[str] = field(default_factory=list)


def _dtype(value: Any, key: str, problems: list[str]) -> str | None:
    if value is None:
        return None
    name = str(value).removeprefix("torch.")
    if name not in _DTYPES:
        problems.append(f"{key}: {value!r} is not one of {list(_DTYPES)}")
        return None
    return name


class _Paths:
    def __init__(self, problems: list[str]) -> None:
        self.paths: list[str] = []
        self.problems = problems

    def index(self, reference: Any, where: str) -> int:
        if not isinstance(reference, str) or not reference:
            self.problems.append(f"{where}: a model is a path, got {reference!r}")
            return 0
        if "+" in reference and not Path(reference).exists():
            self.problems.append(f"{where}: {reference!r} applies a LoRA adapter (model+adapter), which is not supported")
        if reference not in self.paths:
            self.paths.append(reference)
        return self.paths.index(reference)


def _mapping(value: Any, where: str, allowed: set[str], problems: list[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected a mapping, got {value!r}")
        return {}
    for key in value:
        if key not in allowed:
            problems.append(f"{where}.{key}: unknown key (known here: {sorted(allowed)})")
    return value


def _parameters(value: Any, where: str, problems: list[str]) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append(f"{where}: parameters are a mapping of names to values, got {value!r}")
        return None
    return dict(value)


def parse_recipe(data: Any) -> Recipe:
    """A recipe from its parsed YAML.

    Raises:
        RecipeError: Listing every unsupported key and bad value.
    """
    problems: list[str] = []
    spec = _mapping(data, "recipe", _KEYS | set(_REFUSED), problems)
    problems += [f"{key}: {why}" for key, why in _REFUSED.items() if key in spec]
    method_name = spec.get("merge_method")
    method = METHODS.get(method_name) if isinstance(method_name, str) else None
    if method is None or (method.kernel is None and method_name != "linear"):
        problems.append(f"merge_method: {method_name!r} is not a mergekit method we run; choose one of "
                        f"{['linear', *(n for n, m in METHODS.items() if m.kernel is not None)]}")  # fmt: skip
    paths = _Paths(problems)
    input_settings: dict[int, Mapping[str, Any] | None] = {}
    slices: list[OutputSlice] | None = None
    if ("models" in spec) == ("slices" in spec):
        problems.append("give exactly one of models and slices")
    for k, entry in enumerate(spec.get("models") or []):
        entry = _mapping(entry, f"models[{k}]", {"model", "parameters"}, problems)
        index = paths.index(entry.get("model"), f"models[{k}].model")
        input_settings[index] = _parameters(entry.get("parameters"), f"models[{k}].parameters", problems)
    for k, entry in enumerate(spec.get("slices") or []):
        entry = _mapping(entry, f"slices[{k}]", {"sources", "parameters", "base_model"}, problems)
        sources = []
        for j, source in enumerate(entry.get("sources") or []):
            where = f"slices[{k}].sources[{j}]"
            source = _mapping(source, where, {"model", "layer_range", "parameters"}, problems)
            layers = source.get("layer_range")
            if layers is not None and not (
                isinstance(layers, list) and len(layers) == 2 and all(isinstance(v, int) for v in layers)
            ):
                problems.append(f"{where}.layer_range: expected [start, stop], got {layers!r}")
                layers = None
            sources.append(SliceSource(paths.index(source.get("model"), f"{where}.model"), tuple(layers) if layers else None,
                                       _parameters(source.get("parameters"), f"{where}.parameters", problems)))  # fmt: skip
        base = paths.index(entry["base_model"], f"slices[{k}].base_model") if entry.get("base_model") else None
        slices = [
            *(slices or []),
            OutputSlice(tuple(sources), _parameters(entry.get("parameters"), f"slices[{k}].parameters", problems), base),
        ]
    base_index = None
    if spec.get("base_model") is not None:
        if method is not None and method.base == "ignored" and spec["base_model"] not in paths.paths:
            pass  # mergekit's methods without a base (linear, karcher) ignore it too
        else:
            base_index = paths.index(spec["base_model"], "base_model")
    source = spec.get("tokenizer_source")
    model_files = base_index if base_index is not None else 0
    if source == "union":
        problems.append("tokenizer_source: 'union' merges vocabularies, which is not supported; use base or a model")
    elif source == "base":
        if base_index is None:
            problems.append("tokenizer_source: 'base' needs a base_model")
    elif source is not None:
        model_files = paths.index(source, "tokenizer_source")
    round_to = _dtype(spec.get("dtype"), "dtype", problems)
    out_dtype = _dtype(spec.get("out_dtype"), "out_dtype", problems) or round_to
    settings = _parameters(spec.get("parameters"), "parameters", problems) or {}
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise RecipeError(f"the recipe cannot run as it is ({count}):\n  " + "\n  ".join(problems))
    options = MergeOptions(
        base_model=base_index, settings=settings, slices=tuple(slices) if slices else None,
        input_settings=tuple(input_settings.get(k) for k in range(len(paths.paths))),
    )  # fmt: skip
    return Recipe(str(method_name), tuple(paths.paths), options, out_dtype, round_to, model_files)


def read_recipe(path: str | Path) -> Recipe:
    """:func:`parse_recipe` of a YAML file, read within the config reader's bounds.

    Raises:
        RecipeError: The file is not YAML, or the recipe cannot run as it is.
    """
    import yaml

    from composer_swa.config.yaml_reader import read_yaml_text

    try:
        data = read_yaml_text(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError, UnicodeDecodeError, OSError) as error:
        raise RecipeError(f"recipe {str(path)!r} is not readable YAML: {error}") from None
    try:
        return parse_recipe(data)
    except RecipeError as error:
        raise RecipeError(f"{str(path)!r}: {error}") from None
