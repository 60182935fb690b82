"""The merge-method registry: one entry per method, the weights each finds, and what swa-average offers."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import click
import pytest
import torch
from safetensors.torch import load_file, save_file

from composer_swa.cli.average import main
from composer_swa.merging import METHODS, MergeInputs, MergeOptions, Weighting, average_checkpoints, register_method
from composer_swa.merging.methods import OptionError
from composer_swa.merging.numpy_average import average_safetensors

THREE = MergeInputs(("a.safetensors", "b.safetensors", "c.safetensors"))


def test_every_method_declares_options_that_exist() -> None:
    options = {option.name for option in fields(MergeOptions)}

    weighing = ["uniform", "linear", "layerwise", "lawa", "decay", "greedy", "soce", "posthoc"]
    assert [name for name, method in METHODS.items() if method.weigh is not None] == weighing
    assert all(name == method.name and set(method.parameters) <= options for name, method in METHODS.items())
    assert [name for name, method in METHODS.items() if method.ordered] == ["lawa", "decay"]
    assert [name for name, method in METHODS.items() if method.needs_torch] == ["greedy", "soce", "fisher", "regmean"]


def test_swa_average_offers_exactly_the_registered_methods() -> None:
    method = next(param for param in main.params if param.name == "method")

    assert isinstance(method.type, click.Choice) and list(method.type.choices) == list(METHODS)


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("uniform", MergeOptions(), None),
        ("linear", MergeOptions(weights=[3.0, 1.0, 0.0]), [0.75, 0.25, 0.0]),
        ("linear", MergeOptions(weights=[3.0, 1.0, 0.0], normalize=False), [3.0, 1.0, 0.0]),
        ("lawa", MergeOptions(last_k=2), [0.0, 0.5, 0.5]),
        ("lawa", MergeOptions(), [1 / 3, 1 / 3, 1 / 3]),
        # 1 - sqrt(x) at x = 0, 1/3, 2/3, 1: each checkpoint takes the drop over its segment.
        ("decay", MergeOptions(), [1 - (1 - math.sqrt(1 / 3)), math.sqrt(2 / 3) - math.sqrt(1 / 3), 1 - math.sqrt(2 / 3)]),
        ("decay", MergeOptions(decay_shape="linear"), [1 / 3, 1 / 3, 1 / 3]),
    ],
)
def test_each_method_weighs_as_its_recipe(name: str, options: MergeOptions, expected: list[float] | None) -> None:
    weights = METHODS[name].weigh(options, THREE).weights

    assert weights == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("linear", "needs --weights"),
        ("layerwise", "needs --weights-from"),
        ("greedy", "needs --config"),
        ("soce", "needs --scores"),
    ],
)
def test_a_method_without_its_options_is_an_option_error(name: str, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        METHODS[name].weigh(MergeOptions(), THREE)


def test_a_new_method_is_one_registration() -> None:
    @register_method("first_only", parameters=("normalize",))
    def first_only(options: MergeOptions, inputs: MergeInputs) -> Weighting:
        return Weighting([1.0] + [0.0] * (inputs.count - 1), {"note": "first"})

    try:
        assert METHODS["first_only"].weigh(MergeOptions(), THREE).weights == [1.0, 0.0, 0.0]
        with pytest.raises(ValueError, match="already registered"):
            register_method("first_only")(first_only)
        with pytest.raises(ValueError, match=r"unknown parameters \['alpha'\]"):
            register_method("task_arithmetic", parameters=("alpha",))
    finally:
        del METHODS["first_only"]


def test_an_input_of_weight_zero_never_reaches_the_sum(tmp_path: Path) -> None:
    """A diverged candidate (inf, NaN) that a soup or LAWA leaves out does not poison the average."""
    save_file({"w": torch.tensor([float("nan"), float("inf"), 1.0])}, tmp_path / "diverged.safetensors")
    save_file({"w": torch.tensor([2.0, -3.0, 0.5])}, tmp_path / "good.safetensors")
    inputs = [str(tmp_path / "diverged.safetensors"), str(tmp_path / "good.safetensors")]

    average_checkpoints(inputs, tmp_path / "torch.safetensors", [0.0, 1.0])
    average_safetensors(inputs, str(tmp_path / "numpy.safetensors"), [0.0, 1.0], None, "strict", None, {})

    for name in ("torch", "numpy"):
        assert load_file(tmp_path / f"{name}.safetensors")["w"].tolist() == [2.0, -3.0, 0.5]
