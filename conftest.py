"""Doctest collection of the package: the framework adapters import their framework, so they are
collected only where it is installed (the dev extra installs both)."""

from __future__ import annotations

import importlib.util

collect_ignore = [
    path
    for path, framework in (
        ("composer_swa/integrations/huggingface.py", "transformers"),
        ("composer_swa/integrations/lightning.py", "lightning"),
    )
    if importlib.util.find_spec(framework) is None
]
