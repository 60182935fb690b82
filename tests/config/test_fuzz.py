"""Fuzzing configs: mutated example configs give a run or a clean config error, never a traceback.

Each example is the YAML of one of ``examples/*.yaml`` after random key deletions, value
replacements (random scalars and structures, YAML oddities such as dates, tags and aliases) and
type swaps. Reading it may only raise :class:`ConfigError`; ``swa-train --dry-run`` on it exits 0,
or 2 with one message and no traceback, and writes nothing. A few hundred examples by default;
``COMPOSER_SWA_FUZZ_EXAMPLES=5000`` runs a larger search (and includes the MNIST-1D examples in the
dry runs, whose first data load takes seconds).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from composer_swa.cli.train import main
from composer_swa.config import ConfigError, load_config, read_yaml

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = int(os.environ.get("COMPOSER_SWA_FUZZ_EXAMPLES", "0")) or None
#: Examples whose dry run is quick; the MNIST-1D ones join in a large run.
QUICK = ["custom_component.yaml", "char_lm_lawa.yaml"]
DRY_RUN_CONFIGS = sorted(p.name for p in EXAMPLES_DIR.glob("*.yaml")) if EXAMPLES else QUICK
READ_CONFIGS = sorted(p.name for p in EXAMPLES_DIR.glob("*.yaml"))
FUZZ = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

#: Raw YAML put in place of a value: what PyYAML accepts and a config cannot use.
ODDITIES = [
    "2001-02-30", "2001-02-03", "!!bool maybe", "!!int 12x", "!!float x", "!!binary '!!'", "!!set {a, b}",
    "&self [*self]", "{? [a, b]: 1}", "[" * 300 + "]" * 300, "1" * 4400, "~", ".nan", "-.inf", "0x1F", "0o17",
    "[&a [1, 2, 3, 4, 5, 6, 7, 8], &b [*a, *a, *a, *a, *a, *a, *a, *a], &c [*b, *b, *b, *b, *b, *b, *b, *b], "
    "&d [*c, *c, *c, *c, *c, *c, *c, *c], [*d, *d, *d, *d, *d, *d, *d, *d, *d]]",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=64),
    st.sampled_from([0, -1, 2**63, 2**64 + 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["0.5ep", "1dur", "0ba", "-1ba", "5tok", "1e400ba", "0.7dur", "3ep", "2ba", "1.5ep", "cpu", "cuda",
                     "gpu", "fp16", "bf16", "fp8", "sgd", "adam", "mlp", "swa", "ema", "lawa", "swats", "tensorboard",
                     "jsonl", "console", "x:y", "my_components:WideMLP", "my_components:GradientClipping", "ddp"]),
)  # fmt: skip
structures = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value, as keys and indexes."""
    found = [prefix] if prefix else []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        found += _paths(value, (*prefix, key))
    return found


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def _swap_type(value: Any) -> Any:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(i): item for i, item in enumerate(value)}
    if isinstance(value, str):
        return [value]
    return str(value)


#: Values of the same type as the one replaced: they pass the schema more often, so construction,
#: the Trainer's checks and FIT_START see odd values too.
SAME_TYPE: dict[type, st.SearchStrategy[Any]] = {
    bool: st.booleans(),
    int: st.one_of(st.integers(min_value=-2, max_value=64), st.sampled_from([0, -1, 2**31, 2**63, 2**64])),
    float: st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1.0, 1e-30, 2.0])),
    str: st.sampled_from(["0.5ep", "1dur", "0dur", "0ba", "1ba", "5tok", "3sp", "0.99dur", "40ep", "1e3ba", "cpu", "fp16",
                          "bf16", "fp32", "train", "eval", "test", "README.md", "missing.txt", ".", ""]),
}  # fmt: skip


def mutate(data: dict[str, Any], draw: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """1-4 random mutations; returns the data and the raw YAML to put in place of marker strings."""
    raw: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(data, path), path[-1]
        kind = draw(st.sampled_from(["delete", "replace", "swap", "oddity", "add", "tweak", "tweak"]))
        if kind == "tweak" and type(parent[key]) in SAME_TYPE:
            parent[key] = draw(SAME_TYPE[type(parent[key])])
        elif kind == "delete":
            del parent[key]
        elif kind == "replace":
            parent[key] = draw(structures)
        elif kind == "swap":
            parent[key] = _swap_type(parent[key])
        elif kind == "oddity":
            marker = f"__raw{len(raw)}__"
            raw[marker] = draw(st.sampled_from(ODDITIES))
            parent[key] = marker
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(structures)
    return data, raw


def mutated_text(name: str, draw: Any) -> str:
    data = read_yaml(EXAMPLES_DIR / name)
    if name == "char_lm_lawa.yaml":  # its text file, found wherever the test runs
        for split in ("train", "eval"):
            data["data"][split]["path"] = str(EXAMPLES_DIR.parent / "README.md")
    data, raw = mutate(data, draw)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    for marker, snippet in raw.items():
        text = text.replace(f"'{marker}'", snippet).replace(marker, snippet)
    return text


def in_a_folder(text: str) -> tuple[Path, Path]:
    folder = Path(tempfile.mkdtemp(prefix="swa-fuzz-"))
    shutil.copy(EXAMPLES_DIR / "my_components.py", folder)
    (folder / "run.yaml").write_text(text, encoding="utf-8")
    return folder, folder / "run.yaml"


@settings(max_examples=EXAMPLES or 100, **FUZZ)  # type: ignore[arg-type]
@given(st.sampled_from(READ_CONFIGS), st.data())
def test_reading_a_mutated_example_raises_only_config_errors(name: str, data: st.DataObject) -> None:
    folder, path = in_a_folder(mutated_text(name, data.draw))
    try:
        load_config(path)
    except ConfigError as error:
        assert "Traceback" not in str(error) and len(str(error)) < 20_000
    finally:
        shutil.rmtree(folder)


@settings(max_examples=EXAMPLES or 40, **FUZZ)  # type: ignore[arg-type]
@given(st.sampled_from(DRY_RUN_CONFIGS), st.data())
def test_a_dry_run_of_a_mutated_example_exits_0_or_2_cleanly(name: str, data: st.DataObject) -> None:
    folder, path = in_a_folder(mutated_text(name, data.draw))
    cwd = Path.cwd()
    try:
        os.chdir(folder)  # relative save folders and run folders would land here
        result = CliRunner().invoke(main, [str(path), "--dry-run"])
        assert result.exit_code in (0, 2), (result.output, result.exception)
        event(f"exit {result.exit_code}")  # --hypothesis-show-statistics: how many mutants still run
        if result.exit_code == 2:
            assert result.output.startswith("error: ") and "Traceback" not in result.output
        assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == ["my_components.py", "run.yaml"]
    finally:
        os.chdir(cwd)
        shutil.rmtree(folder)
