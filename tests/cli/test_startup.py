"""Each command imports what it uses: the CLIs' modules load neither the trainer, the config schemas nor torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import composer_swa

HEAVY = ("torch", "pydantic", "composer_swa.trainer", "composer_swa.config", "composer_swa.algorithms", "composer_swa.state")


def modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ.copy())
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("module", ["composer_swa.cli.average", "composer_swa.cli.train", "composer_swa"])
def test_importing_a_command_loads_no_training_stack(module: str) -> None:
    loaded = modules_after(f"import {module}")

    assert not {name for name in loaded if name.split(".")[0] in HEAVY or name.startswith(HEAVY)}


def test_the_package_names_still_resolve() -> None:
    from composer_swa import SWA, Trainer
    from composer_swa.algorithms import SWA as SWA_ITSELF
    from composer_swa.trainer import Trainer as TRAINER_ITSELF

    assert SWA is SWA_ITSELF and Trainer is TRAINER_ITSELF
    assert all(hasattr(composer_swa, name) for name in composer_swa.__all__)
    assert set(composer_swa.__all__) <= set(dir(composer_swa))
    with pytest.raises(AttributeError, match=r"module 'composer_swa' has no attribute 'Trainr'"):
        _ = composer_swa.Trainr  # type: ignore[attr-defined]
    assert composer_swa.checkpoint.CheckpointError.__name__ == "CheckpointError"  # submodules load on first use too
