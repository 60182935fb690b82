"""The methods that weigh the inputs: linear, layer-wise, LAWA, decay-emulating, soups, post-hoc EMA.

Each finds weights over the inputs (one list, or one per tensor name), which the streamed weighted
sum applies. Torch-free: the soups import torch when they run.
"""

from __future__ import annotations

from composer_swa.merging import recipes
from composer_swa.merging.methods.registry import MergeInputs, MergeOptions, OptionError, Weighting, register_method
from composer_swa.merging.settings import Parameter

__all__: list[str] = []

_LINEAR = (
    Parameter("weight", float, "input", help="each input's weight; per-layer gradients and name filters allowed"),
    Parameter("normalize", bool, default=True, help="divide by the weights' sum (per tensor)"),
)


@register_method("uniform", summary="the mean of the inputs (Izmailov et al. 2018, SWA; Wortsman et al. 2022, uniform soup)")
def _uniform(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    return Weighting(None)


@register_method(
    "linear",
    parameters=("weights", "normalize", "settings", "input_settings"),
    settings=_LINEAR,
    summary="Σ wᵢθᵢ / Σ wᵢ (Wortsman et al. 2022, arXiv 2203.05482; mergekit's linear)",
)
def _linear(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    if options.weights is not None:
        return Weighting(recipes.normalize_weights(options.weights, normalize=options.normalize))
    if not any(scope and "weight" in scope for scope in (options.settings, *options.input_settings)):
        raise OptionError("--method linear needs --weights (or a recipe's per-model 'weight')")
    from composer_swa.merging.plan import linear_weights

    return Weighting(linear_weights(_LINEAR, options, inputs))


@register_method(
    "layerwise", parameters=("weights_from", "weights"), summary="weights per tensor by name rules and layer gradients"
)
def _layerwise(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    from composer_swa.merging.weights_files import layerwise_from_file

    return Weighting(layerwise_from_file(options.weights_from, inputs, options.weights or [1.0] * inputs.count))


@register_method("lawa", parameters=("last_k",), ordered=True, summary="the mean of the last k checkpoints (Kaddour 2022)")
def _lawa(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    return Weighting(recipes.last_k_weights(inputs.count, options.last_k if options.last_k is not None else inputs.count))


@register_method(
    "decay", parameters=("decay_shape",), ordered=True, summary="weights that emulate an LR decay over constant-LR checkpoints"
)
def _decay(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    return Weighting(recipes.decay_emulating_weights(inputs.count, options.decay_shape))


@register_method("greedy", needs_torch=True, summary="greedy soup by held-out score (Wortsman et al. 2022)")
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


@register_method(
    "soce", parameters=("scores", "threshold", "step"), needs_torch=True, summary="soup of category experts (arXiv 2511.13254)"
)
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


@register_method(
    "posthoc",
    parameters=("sigma_rel", "half_life", "sweep", "select", "plot"),
    expand=_snapshot_files,
    summary="post-hoc EMA of any length from power-EMA snapshots (Karras et al. 2024, EDM2)",
)
def _posthoc(options: MergeOptions, inputs: MergeInputs) -> Weighting:
    from composer_swa.merging.posthoc_method import weigh_posthoc

    return weigh_posthoc(options, inputs)
