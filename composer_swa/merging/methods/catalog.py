"""The per-tensor methods, registered by name with their parameters (mergekit's names and defaults).

Torch-free: each kernel is named ``"module:attribute"`` and imported when a merge runs. Which
statistics each needs over the whole tensor, and how they are gathered without holding it:

=================== ===========================================================================
method              whole-tensor statistics
=================== ===========================================================================
slerp, nuslerp,     the inputs' Gram matrix (norms, angles): one first pass over slices
multislerp, karcher (nuslerp per row: within a slice; per column: a pass of column sums)
model_stock         the task vectors' Gram matrix (one pass); ``filter_wise``: per row, within a slice
ties, breadcrumbs*  each task vector's magnitude ranks: two passes (radix select); ``rescale``: one more
dare_*              ``rescale`` (on by default): the L1 norms before and after the mask, one pass
della*              ranks within each row (within a slice; a 1-D tensor is one row, taken whole) + L1 pass
sce                 variance ranks (two passes, when ``select_topk`` < 1) and mean squares (one pass)
task_arithmetic,    none: elementwise
nearswap,
passthrough
fisher, regmean     per-input Fisher diagonals / Gram matrices, computed before the merge from
                    ``--config``'s model and data (held in memory: models a config builds)
=================== ===========================================================================
"""

from __future__ import annotations

from composer_swa.merging.methods import weighing  # noqa: F401  (the methods that weigh come first in --method)
from composer_swa.merging.methods.registry import MergeMethod, add_method
from composer_swa.merging.settings import Parameter

__all__: list[str] = []

_MODULE = "composer_swa.merging.methods"
_WEIGHT = Parameter("weight", float, "non_base", help="each model's weight")
_DENSITY = Parameter("density", float, "non_base", 1.0, help="fraction of each task vector kept")
_OPTIONS = ("base_model", "settings", "input_settings", "slices", "seed")


def _task_parameters(normalize: bool, rescale: bool, *extra: Parameter) -> tuple[Parameter, ...]:
    return (
        Parameter("int8_mask", bool, default=False, help="accepted; no effect (mergekit: the mask's storage)"),
        Parameter("normalize", bool, default=normalize, help="divide by the sum of the (kept) weights"),
        Parameter("rescale", bool, default=rescale, help="scale kept entries back to the task vector's L1 norm"),
        Parameter("lambda", float, default=1.0, help="scale of the merged task vector"),
        _WEIGHT,
        _DENSITY,
        *extra,
    )


_GAMMA = Parameter("gamma", float, "non_base", 0.01, help="fraction of largest magnitudes dropped")
_EPSILON = Parameter("epsilon", float, "non_base", 0.15, help="spread of keep probabilities by rank")

_TENSOR_METHODS = [
    MergeMethod("slerp", kernel=f"{_MODULE}.interpolation:slerp", settings=(Parameter("t", float, help="0: base, 1: other"),),
                base="required", inputs=(1, 1), summary="spherical interpolation base → other (Shoemake 1985)"),
    MergeMethod("nuslerp", kernel=f"{_MODULE}.interpolation:nuslerp", base="optional", inputs=(2, 2), settings=(
        _WEIGHT, Parameter("nuslerp_flatten", bool, default=True), Parameter("nuslerp_row_wise", bool, default=False)),
        summary="SLERP of two models (or their task vectors) at t = w₁/(w₀+w₁) (mergekit)"),
    MergeMethod("multislerp", kernel=f"{_MODULE}.interpolation:multislerp", base="optional", settings=(
        _WEIGHT, Parameter("normalize_weights", bool, default=True), Parameter("eps", float, default=1e-8)),
        summary="barycentric SLERP of N models on the hypersphere (Goddard 2024)"),
    MergeMethod("karcher", kernel=f"{_MODULE}.interpolation:karcher", settings=(
        Parameter("max_iter", int, default=10), Parameter("tol", float, default=1e-5)),
        summary="Riemannian (Karcher) mean of the directions, mean norm"),
    MergeMethod("task_arithmetic", kernel=f"{_MODULE}.task_vectors:task_arithmetic", base="required",
                settings=_task_parameters(False, False), summary="θ_base + λΣwᵢδᵢ (Ilharco et al. 2023)"),
    MergeMethod("ties", kernel=f"{_MODULE}.task_vectors:ties", base="required", settings=_task_parameters(True, False),
                summary="trim to top density, elect sign, disjoint mean (Yadav et al. 2023)"),
    MergeMethod("dare_linear", kernel=f"{_MODULE}.task_vectors:dare_linear", base="required",
                settings=_task_parameters(False, True), summary="random drop + rescale, add (Yu et al. 2024)"),
    MergeMethod("dare_ties", kernel=f"{_MODULE}.task_vectors:dare_ties", base="required",
                settings=_task_parameters(False, True), summary="random drop + rescale, elect sign (Yu et al. 2024)"),
    MergeMethod("breadcrumbs", kernel=f"{_MODULE}.task_vectors:breadcrumbs", base="required",
                settings=_task_parameters(False, False, _GAMMA),
                summary="drop outliers and small entries (Davari & Belilovsky 2023)"),
    MergeMethod("breadcrumbs_ties", kernel=f"{_MODULE}.task_vectors:breadcrumbs_ties", base="required",
                settings=_task_parameters(False, False, _GAMMA), summary="breadcrumbs + sign election"),
    MergeMethod("della", kernel=f"{_MODULE}.task_vectors:della", base="required",
                settings=_task_parameters(True, True, _EPSILON), summary="rank-aware random drop, elect sign (Deep et al. 2024)"),
    MergeMethod("della_linear", kernel=f"{_MODULE}.task_vectors:della_linear", base="required",
                settings=_task_parameters(False, True, _EPSILON), summary="rank-aware random drop, add"),
    MergeMethod("sce", kernel=f"{_MODULE}.task_vectors:sce", base="required", settings=(
        Parameter("int8_mask", bool, default=False), Parameter("select_topk", float, default=1.0)),
        summary="select high-variance entries, weigh by mean square, erase (Wan et al. 2024)"),
    MergeMethod("model_stock", kernel=f"{_MODULE}.others:model_stock", base="required", inputs=(2, None),
                settings=(Parameter("filter_wise", bool, default=False),),
                summary="interpolate mean ↔ base by the task vectors' angle (Jang et al. 2024)"),
    MergeMethod("nearswap", kernel=f"{_MODULE}.others:nearswap", base="required", inputs=(1, 1),
                settings=(Parameter("t", float),), summary="take the other's value where near the base's"),
    MergeMethod("passthrough", kernel=f"{_MODULE}.others:passthrough", inputs=(1, 1),
                settings=(Parameter("scale", float, "input", None),), summary="copy (with slices: stack layers)"),
    MergeMethod("fisher", kernel=f"{_MODULE}.data_aware:fisher", needs_torch=True,
                settings=(Parameter("weight", float, "non_base", 1.0), Parameter("fisher_floor", float, default=1e-6)),
                summary="Σ λᵢFᵢθᵢ / Σ λᵢFᵢ, diagonal Fisher on --config's data (Matena & Raffel 2022)"),
    MergeMethod("regmean", kernel=f"{_MODULE}.data_aware:regmean", needs_torch=True,
                settings=(Parameter("alpha", float, default=0.9),),
                summary="linear layers: (ΣWᵢGᵢ)(ΣGᵢ)⁻¹ from input Grams on --config's data (Jin et al. 2023)"),
]  # fmt: skip

for _method in _TENSOR_METHODS:
    add_method(MergeMethod(**{**_method.__dict__, "parameters": _OPTIONS}))
