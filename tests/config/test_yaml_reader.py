"""YAML that PyYAML accepts but a config cannot use: each refused with its YAML path, in a file and in --set."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from composer_swa.config import ConfigError, apply_overrides, read_yaml
from composer_swa.config.yaml_reader import MAX_DEPTH, MAX_NODES, YamlRefused, read_yaml_text

#: 10 levels of 10 aliases each: 10**10 values once expanded, a few hundred characters of YAML.
BOMB = "lr: &a0 [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]\n" + "".join(
    f"x{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]\n" for level in range(1, 11)
)


def refused(text: str) -> str:
    with pytest.raises(YamlRefused) as error:
        read_yaml_text(text)
    return str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trainer: {seed: !!bool maybe}", "trainer.seed: cannot read 'maybe' as !!bool (line 1, column 17)"),
        ("trainer: {seed: !!int 12x}", "trainer.seed: cannot read '12x' as !!int"),
        ("trainer: {seed: !!float abc}", "trainer.seed: cannot read 'abc' as !!float"),
        (f"trainer: {{seed: {'1' * 4300}}}", "trainer.seed: an integer of 4,300 digits is beyond any value a config takes"),
        ("data:\n  ? [a, b]\n  : 1\n", "data: a mapping key must be a plain value, got a list (line 2, column 5)"),
        ("seed: " + "[" * 5000, f"the YAML nests deeper than {MAX_DEPTH} levels"),
        ("optimizer: &o {name: sgd, lr: [*o]}", "optimizer: this value contains an alias to itself (a circular reference)"),
        ("optimizer:\n  " + BOMB.replace("\n", "\n  "), f"aliases expand this to more than {MAX_NODES:,} values"),
    ],
)
def test_what_pyyaml_accepts_and_a_config_cannot_use_is_refused_with_its_path(text: str, message: str) -> None:
    assert message in refused(text)


def test_an_alias_bomb_is_refused_at_once() -> None:
    start = time.perf_counter()
    assert "optimizer.x4: aliases expand this" in refused("optimizer:\n  " + BOMB.replace("\n", "\n  "))
    assert time.perf_counter() - start < 1.0  # the expansion is counted, never built
    deep_aliases = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [[[*a{i - 1}]]]\n" for i in range(1, 30))
    assert f"aliases nest this deeper than {MAX_DEPTH} levels" in refused(deep_aliases)


def test_dates_are_read_as_the_text_written() -> None:
    # PyYAML makes `2001-02-03` a date and raises ValueError on `2001-02-30`; no config value is a date.
    assert read_yaml_text("seed: 2001-02-30\nrun_dir: 2024-01-01\nat: 2001-12-14t21:59:43.10-05:00") == {
        "seed": "2001-02-30",
        "run_dir": "2024-01-01",
        "at": "2001-12-14t21:59:43.10-05:00",
    }


def test_merge_keys_and_shared_values_work() -> None:
    text = """\
train: &loader {name: synthetic, samples: 64, batch_size: 16}
eval: {<<: *loader, batch_size: 32}
both: {<<: [*loader, {seed: 1}], samples: 8}
hidden: &h [8, 8]
again: *h
"""
    data = read_yaml_text(text)
    assert data["eval"] == {"name": "synthetic", "samples": 64, "batch_size": 32}
    assert data["both"] == {"name": "synthetic", "samples": 8, "batch_size": 16, "seed": 1}
    assert data["again"] == [8, 8]


def test_a_key_given_twice_is_still_refused_but_a_merged_key_may_be_overridden() -> None:
    with pytest.raises(Exception, match="the key 'lr' appears twice"):
        read_yaml_text("optimizer: {lr: 0.1, lr: 0.2}")
    assert read_yaml_text("a: &a {lr: 0.1}\nb: {<<: *a, lr: 0.2}")["b"] == {"lr": 0.2}


def test_a_file_reports_the_problem_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("model: {name: mlp}\ntrainer: {seed: !!bool maybe}\n")
    with pytest.raises(ConfigError) as error:
        read_yaml(path)
    assert str(error.value) == f"{path} is not a valid config:\n  trainer.seed: cannot read 'maybe' as !!bool (line 2, column 17)"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.seed=!!bool maybe", "trainer.seed: cannot read 'maybe' as !!bool"),
        (f"trainer.seed={'1' * 4300}", "trainer.seed: an integer of 4,300 digits"),
        ("trainer.seed=" + "[" * 5000, "trainer.seed[0][0]"),
        ("data={? [a, b]: 1}", "data: a mapping key must be a plain value"),
        ("optimizer=&o {lr: [*o]}", "optimizer: this value contains an alias to itself"),
        ("algorithms[" + "9" * 5000 + "].name=swa", "the list index '99999999999999999999"),
    ],
)
def test_the_same_through_set(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        apply_overrides({"trainer": {"seed": 0}, "algorithms": []}, [override])
    text = str(error.value)
    assert message in text and len(text) < 500  # the override is shortened, not echoed whole


def test_a_date_through_set_is_text() -> None:
    assert apply_overrides({}, ["trainer.seed=2001-02-30"]) == {"trainer": {"seed": "2001-02-30"}}
