"""One rule for running a model on a batch, for training, evaluation and statistics passes alike."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from composer_swa.model_calls import compute_loss, forward_batch, statistics_forward


class Calls(torch.nn.Module):
    """Records the positional and keyword inputs of every call; returns the first input."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return args[0] if args else next(iter(kwargs.values()))


x, y = torch.arange(6.0).reshape(3, 2), torch.tensor([0, 1, 0])


@pytest.mark.parametrize(
    ("batch", "expected_args", "expected_kwargs"),
    [((x, y), (x,), {}), ([x, y], (x,), {}), ((x,), (x,), {}), ({"x": x, "labels": y}, (), {"x": x, "labels": y}), (x, (x,), {})],
)
def test_the_model_gets_the_inputs_its_batch_kind_names(batch: Any, expected_args: tuple, expected_kwargs: dict) -> None:
    model = Calls()
    forward_batch(model, batch)
    ((args, kwargs),) = model.calls
    assert len(args) == len(expected_args) and all(a is b for a, b in zip(args, expected_args))
    assert kwargs.keys() == expected_kwargs.keys() and all(kwargs[k] is v for k, v in expected_kwargs.items())


def test_what_is_not_a_batch_and_what_has_no_loss_is_named() -> None:
    with pytest.raises(TypeError, match="got tuple of length 0"):
        forward_batch(Calls(), ())
    with pytest.raises(TypeError, match="got str"):
        forward_batch(Calls(), "x")
    with pytest.raises(TypeError, match=r"a loss needs an \(inputs, targets\) batch, got a tuple of length 1"):
        compute_loss(None, x, (x,))
    with pytest.raises(TypeError, match="cannot compute a loss for a batch of type Tensor"):
        compute_loss(None, x, x)


def test_a_statistics_pass_runs_the_batch_in_training_s_microbatches_and_returns_the_last() -> None:
    model = Calls()
    entered: list[int] = []

    class Counting:
        def __enter__(self) -> None:
            entered.append(1)

        def __exit__(self, *exc: object) -> None:
            return None

    outputs = statistics_forward(model, torch.device("cpu"), Counting, microbatches=2)((x, y))
    assert [args[0].tolist() for args, _ in model.calls] == [x[:2].tolist(), x[2:].tolist()]
    assert torch.equal(outputs, x[2:]) and len(entered) == 2
