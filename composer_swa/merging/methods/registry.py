"""The registry of merge methods: each name maps to a method that weighs the inputs or merges each tensor.

As in mergekit's ``merge_methods/registry.py``, :data:`METHODS` is the one map from a name to a
method, and ``swa-average --method`` offers exactly its keys. A method is one of two kinds:

- it **weighs** the inputs: ``weigh(options, inputs) -> Weighting`` finds weights over the inputs
  (one list, or one per tensor name), which the streamed weighted sum applies
  (:func:`~composer_swa.merging.merge.average_checkpoints`, or its torch-free twin);
- it **merges each tensor**: its ``kernel`` (a :class:`~composer_swa.merging.methods.kernel.TensorKernel`,
  named ``"module:attribute"`` and imported when the merge runs, since it needs torch) computes an
  output tensor from the inputs' values of that tensor and the base model's, in fp32, streamed by
  :func:`~composer_swa.merging.tensor_merge.merge_tensors`.

Either kind declares the :class:`MergeOptions` fields it reads (``parameters``, the command line's
options) and the mergekit parameters it resolves per tensor (``settings``: scalars, gradients over
layers, filters by name; see :mod:`~composer_swa.merging.settings`). Importing this module does not
import torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from composer_swa.merging import recipes
from composer_swa.merging.settings import Parameter

if TYPE_CHECKING:
    from composer_swa.merging.plan import OutputSlice

__all__ = ["METHODS", "MergeInputs", "MergeMethod", "MergeOptions", "OptionError", "Weighting", "add_method", "register_method"]

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
    base_model: int | None = None  # the input that is the base model (--base-model, a recipe's base_model)
    settings: Mapping[str, Any] = field(default_factory=dict)  # recipe's top-level parameters, --param
    input_settings: tuple[Mapping[str, Any] | None, ...] = ()  # one per input: a recipe's models[].parameters
    slices: tuple[OutputSlice, ...] | None = None  # a recipe's slices (layer stacking); None: every input, every tensor
    seed: int = 0  # random methods (DARE, DELLA): the same seed draws the same masks


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
        parts: The model and data of a ``swa-train`` config (``--config``), for data-aware methods.
    """

    paths: tuple[str, ...]
    target: list[str] | None = None
    opener: Callable[[Path], Any] | None = None
    scorer: Callable[..., Callable[[dict[str, Any]], float]] | None = None
    parts: Any = None

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
    """A named method: what it reads, and either how it weighs the inputs or how it merges a tensor.

    Attributes:
        weigh: ``(options, inputs) -> Weighting``, for a method that weighs the inputs.
        kernel: ``"module:attribute"`` of its :class:`~composer_swa.merging.methods.kernel.TensorKernel`,
            for a method that merges each tensor.
        parameters: The :class:`MergeOptions` fields it reads.
        settings: The parameters it resolves per tensor, as mergekit names them.
        base: Whether it reads a base model: ``ignored``, ``optional`` or ``required``.
        inputs: The least and most inputs other than the base it takes (``None``: no most).
        ordered: It weighs the inputs by position, so they must come oldest first.
        needs_torch: It runs models (soups, data-aware merges); plain weighted sums run on NumPy.
        expand: Turns the inputs given into the files to weigh and average, before anything opens them.
        summary: The paper or source, and the idea in a line (the README's methods table).
    """

    name: str
    weigh: Callable[[MergeOptions, MergeInputs], Weighting] | None = None
    kernel: str | None = None
    parameters: tuple[str, ...] = ()
    settings: tuple[Parameter, ...] = ()
    base: Literal["ignored", "optional", "required"] = "ignored"
    inputs: tuple[int, int | None] = (1, None)
    ordered: bool = False
    needs_torch: bool = False
    expand: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None
    summary: str = ""


#: Every method, by name.
METHODS: dict[str, MergeMethod] = {}
_OPTIONS = {option.name for option in fields(MergeOptions)}


def add_method(method: MergeMethod) -> MergeMethod:
    """Adds ``method`` to :data:`METHODS`.

    Raises:
        ValueError: Its name is taken, a parameter is not a :class:`MergeOptions` field, or it has
            both or neither of ``weigh`` and ``kernel``.
    """
    unknown = sorted(set(method.parameters) - _OPTIONS)
    if unknown:
        raise ValueError(f"method {method.name!r}: unknown parameters {unknown}")
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r}: already registered")
    if (method.weigh is None) == (method.kernel is None):
        raise ValueError(f"method {method.name!r}: give exactly one of weigh (weights over inputs) and kernel (per tensor)")
    METHODS[method.name] = method
    return method


def register_method(
    name: str,
    parameters: tuple[str, ...] = (),
    ordered: bool = False,
    needs_torch: bool = False,
    expand: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None,
    settings: tuple[Parameter, ...] = (),
    summary: str = "",
) -> Callable[[Callable[[MergeOptions, MergeInputs], Weighting]], Callable[[MergeOptions, MergeInputs], Weighting]]:
    """Adds the decorated ``(options, inputs) -> Weighting`` function to :data:`METHODS` as ``name`` (see :func:`add_method`).

    Example:
        >>> @register_method("first_only")
        ... def first_only(options, inputs):
        ...     return Weighting([1.0] + [0.0] * (inputs.count - 1))
        >>> METHODS.pop("first_only").weigh(MergeOptions(), MergeInputs(("a", "b"))).weights
        [1.0, 0.0]
    """
    unknown = sorted(set(parameters) - _OPTIONS)
    if name in METHODS or unknown:
        raise ValueError(f"method {name!r}: " + (f"unknown parameters {unknown}" if unknown else "already registered"))

    def add(weigh: Callable[[MergeOptions, MergeInputs], Weighting]) -> Callable[[MergeOptions, MergeInputs], Weighting]:
        add_method(MergeMethod(name, weigh, None, parameters, settings, ordered=ordered, needs_torch=needs_torch,
                               expand=expand, summary=summary))  # fmt: skip
        return weigh

    return add
