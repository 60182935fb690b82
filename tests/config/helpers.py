"""The small config the config tests vary: an MLP on synthetic data, four epochs."""

from __future__ import annotations


def config(**sections: object) -> dict[str, object]:
    """A valid config as a dict; each keyword replaces one top-level section."""
    base: dict[str, object] = {
        "model": {"name": "mlp", "hidden": [8]},
        "data": {"train": {"name": "synthetic", "samples": 40, "features": 3, "classes": 5, "batch_size": 8}},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "trainer": {"max_duration": "4ep", "progress_bar": False},
    }
    return base | sections
