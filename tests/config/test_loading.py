from __future__ import annotations

import pytest

from composer_swa.config import ConfigError, apply_overrides


def test_overrides_reach_nested_keys_and_list_items() -> None:
    data = {"trainer": {"seed": 0}, "algorithms": [{"name": "swa", "swa_lr": 0.1}]}
    apply_overrides(
        data, ["trainer.seed=3", "algorithms.0.swa_lr=0.02", "algorithms[1]={name: ema, smoothing: 0.9}", "new.key=[1, 2]"]
    )
    assert data == {
        "trainer": {"seed": 3},
        "algorithms": [{"name": "swa", "swa_lr": 0.02}, {"name": "ema", "smoothing": 0.9}],
        "new": {"key": [1, 2]},
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer", "expected key.path=value"),
        ("trainer.seed.x=1", "trainer.seed.x goes inside something that is not a mapping or list"),
        ("algorithms[5].name=swa", "algorithms.5 is past the end of a list of 1"),
        ("trainer.seed=[1", "the value is not valid YAML"),
    ],
)
def test_bad_overrides_are_named(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        apply_overrides({"trainer": {"seed": 0}, "algorithms": [{}]}, [override])
