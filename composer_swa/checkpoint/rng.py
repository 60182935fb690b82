"""Random number generator states, stored as tensors and plain lists so a weights-only load reads them.

A resumed run draws the same random numbers as the uninterrupted one only if every generator it
uses is back where it was: Python's ``random``, NumPy's global generator, torch's CPU and CUDA
generators, and any ``torch.Generator`` a data loader or its sampler carries.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng", "loader_generators", "restore_rng"]


def loader_generators(loader: Iterable[Any]) -> list[torch.Generator]:
    """The ``torch.Generator`` objects a ``DataLoader`` draws from: its own and its samplers', each once."""
    found: dict[int, torch.Generator] = {}
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (loader, getattr(loader, "sampler", None), batch_sampler, getattr(batch_sampler, "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator):
            found.setdefault(id(generator), generator)
    return list(found.values())


def capture_rng(loader: Iterable[Any] | None = None) -> dict[str, Any]:
    """Every generator's state now, plus ``loader``'s own generators when given.

    Example:
        >>> saved = capture_rng()
        >>> first = torch.rand(1)
        >>> restore_rng(saved)
        >>> torch.equal(torch.rand(1), first)
        True
    """
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "loader": [generator.get_state() for generator in loader_generators(loader)] if loader is not None else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }
    return state


def restore_rng(state: dict[str, Any], loader: Iterable[Any] | None = None) -> None:
    """Puts every generator back to :func:`capture_rng`'s ``state``; ``loader``'s generators too when given."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state["numpy"]
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state((saved["kind"], keys, saved["position"], saved["has_gauss"], saved["cached"]))
    if loader is not None:
        generators = loader_generators(loader)
        if len(generators) != len(state["loader"]):
            raise ValueError(
                f"the checkpoint holds the state of {len(state['loader'])} data loader generator(s), "
                f"this run's train_dataloader has {len(generators)}; resume with the loader the run was saved with"
            )
        for generator, saved_state in zip(generators, state["loader"]):
            generator.set_state(saved_state)
