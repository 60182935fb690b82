"""Wrapper prefixes on the names of weight files we did not write: found, and stripped only where a wrapper put them.

DDP (``module.``), ``torch.compile`` (``_orig_mod.``) and FSDP1 (``_fsdp_wrapped_module.``) add a
prefix to every key of their ``state_dict()``. composer_swa never writes one (its
:class:`~composer_swa.State` holds the unwrapped model), but a foreign file may carry one. A prefix is
stripped only when *every* key carries it, and never because a name merely starts with one: a model
may have its own child named ``module`` (Composer's ``ComposerClassifier`` does), and then
``module.weight`` and ``weight`` are two different tensors.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

__all__ = ["WRAPPER_PREFIXES", "describe_stripped", "strip_prefix", "wrapper_prefix"]

WRAPPER_PREFIXES = ("module.", "_orig_mod.", "_fsdp_wrapped_module.")
#: Attribute names that only wrappers use; ``module`` is also a common name of a model's own child.
_WRAPPER_ONLY = ("_orig_mod.", "_fsdp_wrapped_module.")
_Value = TypeVar("_Value")


def _prefix_chain(names: Collection[str]) -> list[str]:
    """The wrapper prefixes that every name carries, outermost first (``module._orig_mod.`` → both)."""
    chain: list[str] = []
    depth = 0
    while names:
        common = [p for p in WRAPPER_PREFIXES if all(name.startswith(p, depth) for name in names)]
        if not common:
            break
        chain.append(common[0])
        depth += len(common[0])
    return chain


def wrapper_prefix(names: Collection[str], target: Collection[str] | None = None) -> str:
    """The wrapper prefix to strip from every one of ``names``, or ``""``.

    Only a chain of :data:`WRAPPER_PREFIXES` that every name carries is a candidate. With ``target``
    (the names the weights must fit, e.g. the model's ``state_dict()`` keys), the part of the chain
    whose removal matches the most target names is stripped (the shortest on ties, so a model whose
    own keys start with ``module.`` keeps them). Without one, the chain is stripped down to its last
    wrapper-only name (``_orig_mod.``, ``_fsdp_wrapped_module.``), and a lone ``module.`` is kept.

    Example:
        >>> wrapper_prefix(["module.a", "module.b"], target=["a", "b"])
        'module.'
        >>> wrapper_prefix(["module.a", "weight"], target=["a", "weight"])  # not on every key: a child's name
        ''
        >>> wrapper_prefix(["module.a"], target=["module.a"])  # the model's own child is named module
        ''
        >>> wrapper_prefix(["module._orig_mod.a"])
        'module._orig_mod.'
    """
    chain = _prefix_chain(names)
    if not chain:
        return ""
    if target is None:
        depth = max((k + 1 for k, prefix in enumerate(chain) if prefix in _WRAPPER_ONLY), default=0)
        return "".join(chain[:depth])
    wanted = set(target)
    best, best_overlap = "", sum(name in wanted for name in names)
    for depth in range(1, len(chain) + 1):
        prefix = "".join(chain[:depth])
        overlap = sum(name[len(prefix) :] in wanted for name in names)
        if overlap > best_overlap:
            best, best_overlap = prefix, overlap
    return best


def strip_prefix(tensors: dict[str, _Value], prefix: str) -> dict[str, _Value]:
    """``tensors`` with ``prefix`` removed from every key (which must carry it)."""
    return {name[len(prefix) :]: value for name, value in tensors.items()} if prefix else dict(tensors)


def describe_stripped(prefix: str, where: str, reason: str = "the model's keys do not") -> str:
    """The message that says a prefix was stripped from ``where`` (a file), and why (``reason``)."""
    return (
        f"stripped the wrapper prefix {prefix!r} from every key of {where} (a DDP/torch.compile/FSDP wrapper "
        f"puts it there): every key carries it and {reason}"
    )
