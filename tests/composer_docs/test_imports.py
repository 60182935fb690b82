"""Composer's documented import lines for what the Trainer item covers resolve with ``composer`` renamed ``composer_swa``.

The lines were collected from Composer's docs, README and docstrings (``from composer[.core|.loggers|
.callbacks|.trainer] import ...``), keeping every line all of whose names composer_swa has. Left out,
because composer_swa has no such thing: ``Evaluator``, ``DataSpec``, ``Precision``, ``functional``,
``SpeedMonitor``, ``CheckpointSaver``, and the remote and third-party loggers (``RemoteUploaderDownloader``,
``WandBLogger``, ``TensorboardLogger``, ``CometMLLogger``, ``MLFlowLogger``, ``NeptuneLogger``,
``MosaicMLLogger``, ``FileLogger``). Composer's ``from composer.core import types``/``passes`` name its
internals.
"""

from __future__ import annotations

import pytest

COMPOSER_IMPORT_LINES = [
    "from composer import Trainer",
    "from composer.trainer import Trainer",
    "from composer.loggers import Logger",
    "from composer.core import Algorithm, Event, State",
    "from composer.core import State",
    "from composer.core import Callback, State",
    "from composer.core import State, Timestamp",
    "from composer.core import Callback, State, Time, TimeUnit",
    "from composer.loggers import LoggerDestination",
    "from composer.loggers import Logger, LoggerDestination",
    "from composer.loggers import InMemoryLogger",
    "from composer.core import Timestamp",
    "from composer.core import Callback",
    "from composer.core import Algorithm, Event, State, Time, TimeUnit",
    "from composer.core import Engine as Engine",
    "from composer.core import State, Time, TimeUnit",
    "from composer.core import Event, State, Time",
    "from composer.core import Callback, State, TimeUnit",
    "from composer import Time",
    "from composer import Callback, State, Logger",
    "from composer import Callback, Event, Logger, State",
    "from composer.callbacks import LRMonitor",
    "import composer",
]


@pytest.mark.parametrize("line", COMPOSER_IMPORT_LINES)
def test_a_composer_import_line_resolves_renamed(line: str) -> None:
    namespace: dict[str, object] = {}
    exec(line.replace("composer", "composer_swa"), namespace)
    names = [name for name in namespace if name != "__builtins__"]
    assert names and all(namespace[name] is not None for name in names)


def test_the_trainer_is_reached_as_the_getting_started_notebook_reaches_it() -> None:
    import composer_swa

    assert composer_swa.trainer.Trainer is composer_swa.Trainer
