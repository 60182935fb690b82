"""What the swa-average tests share: a small run config and a way to invoke the command."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from composer_swa.cli.average import main

CONFIG = """\
model: {name: mlp, hidden: [8], batch_norm: true}
data:
  train: {name: synthetic, samples: 96, features: 6, classes: 3, batch_size: 32}
  eval: {name: synthetic, samples: 48, features: 6, classes: 3, seed: 1, batch_size: 48}
optimizer: {name: sgd, lr: 0.1}
trainer: {max_duration: 1ep}
"""


def invoke(*args: Any) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output
