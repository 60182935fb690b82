"""Command-line entry points: ``swa-train`` (and ``swa-average``, with checkpoint averaging)."""
