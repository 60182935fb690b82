"""Runs defined in YAML: the schema, loading with clear errors, and building the run's objects.

Example:
    >>> config = validate_config({
    ...     "model": {"name": "mlp", "hidden": [16]},
    ...     "data": {"train": {"name": "synthetic", "samples": 64, "batch_size": 16}},
    ...     "optimizer": {"name": "sgd", "lr": 0.1},
    ...     "algorithms": [{"name": "swa", "swa_start": "0.5dur", "update_interval": "1ba"}],
    ...     "trainer": {"max_duration": "2ep", "progress_bar": False},
    ... }, source="example")
    >>> trainer = build_run(config).trainer()
    >>> trainer.fit()  # doctest: +ELLIPSIS
    [batch 8] SWA: the model now holds the average of 5 snapshots
    [batch 8] algorithm trace, events each acted on:
    SWA: batch_end×5, fit_end×1, fit_start×1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from composer_swa._lazy import lazy_attributes

if TYPE_CHECKING:
    from composer_swa.config.build import RunParts, build_run
    from composer_swa.config.loading import ConfigError, apply_overrides, load_config, read_yaml, validate_config
    from composer_swa.config.schema import RunConfig

__all__ = ["ConfigError", "RunConfig", "RunParts", "apply_overrides", "build_run", "load_config", "read_yaml", "validate_config"]

# Loaded on first use: ``swa-average`` reads recipes with ``config.yaml_reader`` alone, without the run builder's imports.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        **dict.fromkeys(("RunParts", "build_run"), "composer_swa.config.build"),
        **dict.fromkeys(
            ("ConfigError", "apply_overrides", "load_config", "read_yaml", "validate_config"), "composer_swa.config.loading"
        ),
        "RunConfig": "composer_swa.config.schema",
    },
)
