from __future__ import annotations

import math
from pathlib import Path

import pytest

from composer_swa.config import ConfigError, build_run, validate_config
from composer_swa.models import CharGPT
from tests.config.helpers import config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_model_arguments_come_from_the_dataset(tmp_path: Path) -> None:
    parts = build_run(validate_config(config(), "t"))
    assert parts.model.layers[1].in_features == 3 and parts.model.layers[-1].out_features == 5
    text = tmp_path / "text.txt"
    text.write_text("abcabcabd" * 40)
    lm = config(model={"name": "char_gpt", "width": 16, "heads": 2},
                data={"train": {"name": "char_text", "path": str(text), "block_size": 8}})  # fmt: skip
    model = build_run(validate_config(lm, "t")).model
    assert isinstance(model, CharGPT) and model.token_embedding.num_embeddings == 4 and model.block_size == 8


def test_warmup_cosine_follows_its_formula() -> None:
    parts = build_run(validate_config(config(scheduler={"name": "warmup_cosine", "warmup": "0.25dur", "final_factor": 0.1}), "t"))
    lrs = []
    for _ in range(20):
        lrs.append(parts.optimizer.param_groups[0]["lr"])
        parts.optimizer.step()
        parts.scheduler.step()
    total, warmup = 20, 5  # 40 samples / 8 = 5 batches an epoch, 4 epochs
    expected = [
        0.1 * (s + 1) / warmup
        if s < warmup
        else 0.1 * (0.1 + 0.9 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup))) / 2)
        for s in range(20)
    ]
    assert lrs == pytest.approx(expected)


def test_a_failing_constructor_is_reported_with_its_path() -> None:
    with pytest.raises(ConfigError, match=r"data.train: building it raised FileNotFoundError: char_text: no text file at"):
        build_run(validate_config(config(data={"train": {"name": "char_text", "path": "/nonexistent.txt"}}), "t"))
    text_data = {"train": {"name": "char_text", "path": str(EXAMPLES / "my_components.py")}}  # has no in_features
    with pytest.raises(ConfigError, match=r"model.in_features: required, and the training dataset does not have it"):
        build_run(validate_config(config(data=text_data, model={"name": "mlp", "num_classes": 3}), "t"))


def test_import_path_components_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    run = validate_config(
        config(
            model={"name": "my_components:WideMLP", "width": 4},
            algorithms=[{"name": "my_components:GradientClipping", "max_norm": 0.5}],
        ),
        "t",
        config_dir=EXAMPLES,
    )
    parts = build_run(run, EXAMPLES)
    assert type(parts.model).__name__ == "WideMLP" and parts.algorithms[0].max_norm == 0.5
    with pytest.raises(ConfigError, match=r"algorithms\[0\].*GradientClipping takes no argument 'max_nrm'; it takes: max_norm"):
        validate_config(config(algorithms=[{"name": "my_components:GradientClipping", "max_nrm": 1}]), "t", config_dir=EXAMPLES)
