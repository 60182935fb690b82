"""``torch.compile``'d models: trained compiled, but named, averaged and swapped as the original module.

``torch.compile(model)`` returns an ``OptimizedModule`` around ``model`` that shares its parameters
and prefixes every ``state_dict()`` key with ``_orig_mod.``. Keeping the original module in the
:class:`~composer_swa.State` keys checkpoints, averages and exports like the uncompiled model, and
lets statistics passes (whose forward hooks and train/eval switches would make dynamo recompile
until its recompile limit) run eagerly, while the training step still calls the compiled module.
"""

from __future__ import annotations

import sys

import torch

__all__: list[str] = []


def split_compiled(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """``(original module, compiled module)`` for a ``torch.compile``'d model, ``(model, None)`` otherwise.

    Example:
        >>> linear = torch.nn.Linear(2, 2)
        >>> original, compiled = split_compiled(torch.compile(linear))
        >>> original is linear, list(original.state_dict())
        (True, ['weight', 'bias'])
        >>> split_compiled(linear) == (linear, None)
        True
    """
    if "torch._dynamo" not in sys.modules:  # nothing was compiled; importing dynamo costs seconds
        return model, None
    from torch._dynamo.eval_frame import OptimizedModule

    if not isinstance(model, OptimizedModule):
        return model, None
    original = model._orig_mod
    while isinstance(original, OptimizedModule):  # compiled twice: the innermost module is the model
        original = original._orig_mod
    return original, model
