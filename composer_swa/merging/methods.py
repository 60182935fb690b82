"""Merge methods by name: each declares the options it reads and turns them into weights over the inputs.

As in mergekit's ``merge_methods/registry.py``, :data:`METHODS` is the one map from a name to a
method, and ``swa-average --method`` offers exactly its keys. Adding a method is one
:func:`register_method` call on a function ``(options, inputs) -> Weighting``; an option no method read
before also needs its field in :class:`MergeOptions` and its command-line flag. Every method so far
produces weights over the inputs, which :func:`~composer_swa.merging.merge.average_checkpoints` (or
its torch-free twin) then sums; a method may first turn the inputs given into the files it weighs
(``expand``: post-hoc EMA reads a snapshot folder's index).

Importing this module does not import torch: the soups load it when they run.

Example:
    >>> inputs = MergeInputs(("a.safetensors", "b.safetensors", "c.safetensors"))
    >>> METHODS["lawa"].weigh(MergeOptions(last_k=2), inputs).weights
    [0.0, 0.5, 0.5]
    >>> list(METHODS)
    ['uniform', 'weighted', 'layerwise', 'lawa', 'decay', 'greedy', 'soce', 'posthoc']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from composer_swa.merging import recipes

__all__ = ["METHODS", "MergeInputs", "MergeMethod", "MergeOptions", "OptionError", "Weighting", "register_method"]

#: A model's weights by name, as a soup's scorer takes them.
StateDict = Mapping[str, Any]


class OptionError(ValueError):
    """A method's options are missing, or do not fit the inputs (``swa-average`` reports a usage error)."""


@dataclass(frozen=True)
class MergeOptions:
    """Every option a method may read, by the name a method declares in ``parameters``."""

    weights: list[float] | None = None  # one per input (--weights, or a list in --weights-from)
    weights_from: Path | None = None  # layerwise: a YAML/JSON of rules and gradients
    normalize: bool = True
    last_k: int | None = None
    decay_shape: str = "1-sqrt"
    scores: Path | None = None  # soce: a CSV of per-category scores
    threshold: float = 0.5
    step: float = 0.1
    sigma_rel: float | None = None  # posthoc: the EMA length to reconstruct
    half_life: str | None = None  # posthoc: ... or its half-life at the last snapshot, "500ba"
    sweep: str | None = None  # posthoc: START:STOP:COUNT lengths to score
    select: str | None = None  # posthoc: "best" writes the sweep's best length
    plot: Path | None = None  # posthoc: where the sweep's plot goes


@dataclass(frozen=True)
class MergeInputs:
    """What a method may know of the inputs: their paths (oldest first for ordered methods), and more when given.

    Args:
        paths: The inputs.
        target: The names the output must fit (a model's ``state_dict()`` keys), if known.
        opener: Opens one input (default: torch's :func:`~composer_swa.merging.sources.open_source`).
        scorer: Builds the held-out score of a model's weights (higher is better), when a model and
            its held-out data are given; called only by the methods that score soups (with
            ``refresh_batch_norm=True``, the score recomputes batch-norm statistics first).
    """

    paths: tuple[str, ...]
    target: list[str] | None = None
    opener: Callable[[Path], Any] | None = None
    scorer: Callable[..., Callable[[dict[str, Any]], float]] | None = None

    @property
    def count(self) -> int:
        return len(self.paths)

    def tensor_names(self) -> list[str]:
        """The first input's tensor names, as the output will name them (a wrapper prefix stripped)."""
        from composer_swa.merging.inputs import open_sources

        sources = open_sources(self.paths, self.target, self.opener)
        for source in sources:
            source.close()
        return list(sources[0].infos)


@dataclass
class Weighting:
    """A method's result: weights over the inputs (``None``: uniform), header provenance, and the steps it took."""

    weights: recipes.TensorWeights | None
    provenance: dict[str, object] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    output: bool = True  # False: the printed steps are the result (a sweep without --select); nothing is written


@dataclass(frozen=True)
class MergeMethod:
    """A named method: the :class:`MergeOptions` fields it reads, and how its weights are found.

    Attributes:
        ordered: It weighs the inputs by position, so they must come oldest first.
        needs_torch: It runs models (soups); the others' plain safetensors inputs are averaged on NumPy.
        expand: Turns the inputs given into the files to weigh and average, before anything opens them.
    """

    name: str
    weigh: Callable[[MergeOptions, MergeInputs], Weighting]
    parameters: tuple[str, ...] = ()
    ordered: bool = False
    needs_torch: bool = False
    expand: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None


#: Every method, by name.
METHODS: dict[str, MergeMethod] = {}
_OPTIONS = {option.name for option in fields(MergeOptions)}


def register_method(
    name: str,
    parameters: tuple[str, ...] = (),
    ordered: bool = False,
    needs_torch: bool = False,
    expand: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None,
) -> Callable[[Callable[[MergeOptions, MergeInputs], Weighting]], Callable[[MergeOptions, MergeInputs], Weighting]]:
    """Adds the decorated ``(options, inputs) -> Weighting`` function to :data:`METHODS` as ``name``.

    Raises:
        ValueError: ``name`` is taken, or a parameter is not a :class:`MergeOptions` field.
    """
    unknown = sorted(set(parameters) - _OPTIONS)
    if name in METHODS or unknown:
        raise ValueError(f"method {name!r}: " + (f"unknown parameters {unknown}" if unknown else "already registered"))

    def add(weigh: Callable[[MergeOptions, MergeInputs], Weighting]) -> Callable[[MergeOptions, MergeInputs], Weighting]:
        METHODS[name] = MergeMethod(name, weigh, parameters, ordered, needs_torch, expand)
        return weigh

    return add


@register_method("uniform")
def _uniform(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    return Weighting(None)


@register_method("weighted", parameters=("weights", "normalize"))
def _weighted(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    if options.weights is None:
        raise OptionError("--method weighted needs --weights or --weights-from")
    return Weighting(recipes.normalize_weights(options.weights, normalize=options.normalize))


@register_method("layerwise", parameters=("weights_from", "weights"))
def _layerwise(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    from composer_swa.merging.weights_files import layerwise_from_file

    return Weighting(layerwise_from_file(options.weights_from, inputs, options.weights or [1.0] * inputs.count))


@register_method("lawa", parameters=("last_k",), ordered=True)
def _lawa(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    return Weighting(recipes.last_k_weights(inputs.count, options.last_k if options.last_k is not None else inputs.count))


@register_method("decay", parameters=("decay_shape",), ordered=True)
def _decay(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    return Weighting(recipes.decay_emulating_weights(inputs.count, options.decay_shape))


@register_method("greedy", needs_torch=True)
def _greedy(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    from composer_swa.merging.inputs import read_state_dicts
    from composer_swa.merging.soups import greedy_soup

    if inputs.scorer is None:
        raise OptionError("--method greedy needs --config naming the model and its held-out data (data.eval)")
    candidates = read_state_dicts(inputs.paths, inputs.target)
    result = greedy_soup(candidates, inputs.scorer())
    weights = [1.0 / len(result.chosen) if k in result.chosen else 0.0 for k in range(inputs.count)]
    provenance: dict[str, object] = {"chosen": result.chosen, "held_out": result.score, "individual": result.individual_scores}
    return Weighting(weights, provenance, result.steps)


@register_method("soce", parameters=("scores", "threshold", "step"), needs_torch=True)
def _soce(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    from composer_swa.merging.inputs import read_state_dicts
    from composer_swa.merging.soups import read_category_scores, soce, weighted_soup

    if options.scores is None:
        raise OptionError("--method soce needs --scores FILE.csv (candidate,<category>,... one row per input)")
    names, categories, table = read_category_scores(options.scores)
    if len(names) != inputs.count:
        raise OptionError(
            f"{options.scores} has {len(names)} candidates, {inputs.count} inputs were given; one row per input, in order"
        )
    evaluate = None
    if inputs.scorer is not None:
        score_soup = inputs.scorer()
        candidates = read_state_dicts(inputs.paths, inputs.target)
        evaluate = lambda w: score_soup(weighted_soup(candidates, w))  # noqa: E731
    result = soce(categories, table, evaluate, options.threshold, options.step)
    return Weighting(result.weights, {"experts": result.experts, "aggregate": result.aggregate}, result.steps)


def _snapshot_files(inputs: tuple[str, ...]) -> tuple[str, ...]:
    from composer_swa.merging.posthoc_method import snapshot_files

    return snapshot_files(inputs)


@register_method("posthoc", parameters=("sigma_rel", "half_life", "sweep", "select", "plot"), expand=_snapshot_files)
def _posthoc(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    from composer_swa.merging.posthoc_method import weigh_posthoc

    return weigh_posthoc(options, inputs)
