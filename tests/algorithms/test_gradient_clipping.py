"""GradientClipping against NumPy references of each rule, and through the Trainer's optimizer step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from composer_swa import Callback, Event, GradientClipping, State, Trainer
from composer_swa.algorithms.gradient_clipping import apply_gradient_clipping
from composer_swa.config.builtins import ALGORITHMS
from composer_swa.events.loop import Loop
from composer_swa.integrations import AlgorithmRunner
from composer_swa.loggers import Logger
from composer_swa.trainer.stepping import step_optimizers
from tests.helpers import WeightRecorder, flat_weights, make_loader, mlp, quiet


def params_with_grads() -> list[torch.nn.Parameter]:
    """A Linear weight, a conv filter bank, a zero bias (its norm is under eps), a scalar gain, one without a gradient."""
    generator = torch.Generator().manual_seed(3)
    shapes = [(5, 4), (3, 2, 3, 3), (5,), ()]
    parameters = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in shapes]
    parameters[2].data.zero_()
    for parameter, scale in zip(parameters, (0.3, 0.05, 1.0, 2.0)):
        parameter.grad = scale * torch.randn(parameter.shape, generator=generator)
    parameters[0].grad[1] *= 1e-4  # a row far under the adaptive threshold: left alone
    return [*parameters, torch.nn.Parameter(torch.randn(2))]


def numpy_copies(parameters: list[torch.nn.Parameter]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    with_grads = [p for p in parameters if p.grad is not None]
    return [p.detach().double().numpy().copy() for p in with_grads], [p.grad.double().numpy().copy() for p in with_grads]


def clipped(parameters: list[torch.nn.Parameter], clipping_type: str, threshold: float) -> list[np.ndarray]:
    algorithm = GradientClipping(clipping_type=clipping_type, clipping_threshold=threshold)
    model = torch.nn.Module()
    for index, parameter in enumerate(parameters):
        model.register_parameter(f"p{index}", parameter)
    state = State(model=model, max_duration="1ba", train_dataloader=[0])
    assert algorithm.match(Event.AFTER_TRAIN_BATCH, state)
    algorithm.apply(Event.AFTER_TRAIN_BATCH, state, Logger())
    return [p.grad.double().numpy() for p in parameters if p.grad is not None]


def test_norm_scales_every_gradient_by_the_global_norm_as_numpy_computes_it() -> None:
    parameters = params_with_grads()
    _, grads = numpy_copies(parameters)
    total = np.sqrt(sum(float((g**2).sum()) for g in grads))
    assert total > 0.5
    expected = [g * min(1.0, 0.5 / (total + 1e-6)) for g in grads]  # torch's clip_grad_norm_ adds 1e-6
    for got, want in zip(clipped(parameters, "norm", 0.5), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert parameters[-1].grad is None


def test_value_clamps_each_element() -> None:
    parameters = params_with_grads()
    _, grads = numpy_copies(parameters)
    for got, want in zip(clipped(parameters, "value", 0.1), grads):
        np.testing.assert_allclose(got, np.clip(want, -0.1, 0.1), rtol=1e-6)


def agc_numpy(weight: np.ndarray, grad: np.ndarray, threshold: float, eps: float = 1e-3) -> np.ndarray:
    """Brock et al. 2021, eq. 3, unit-wise: rows of a matrix, filters of a conv, whole 0-D/1-D tensors."""
    axes = tuple(range(1, weight.ndim)) if weight.ndim > 1 else None
    weight_norm = np.sqrt((weight**2).sum(axis=axes, keepdims=weight.ndim > 1))
    grad_norm = np.sqrt((grad**2).sum(axis=axes, keepdims=weight.ndim > 1))
    max_norm = threshold * np.maximum(weight_norm, eps)
    return np.where(grad_norm > max_norm, grad * max_norm / np.maximum(grad_norm, 1e-300), grad)


def test_adaptive_clips_each_unit_by_the_ratio_of_its_gradient_norm_to_its_weight_norm() -> None:
    parameters = params_with_grads()
    weights, grads = numpy_copies(parameters)
    got = clipped(parameters, "adaptive", 0.05)
    for weight, grad, result in zip(weights, grads, got):
        np.testing.assert_allclose(result, agc_numpy(weight, grad, 0.05), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(got[0][1], grads[0][1], rtol=1e-6)  # the small row is untouched
    assert not np.allclose(got[0][0], grads[0][0])  # the others are clipped
    bias_norm = np.linalg.norm(got[2])
    assert bias_norm == pytest.approx(0.05 * 1e-3, rel=1e-5)  # the zero bias moves, at the eps floor


class GradientsSeen(Callback):
    """The gradients the optimizer is about to use (callbacks run after the algorithms at AFTER_TRAIN_BATCH)."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def after_train_batch(self, state: State, logger: Logger) -> None:
        self.seen.append(torch.cat([p.grad.detach().double().flatten() for p in state.model.parameters()]))


def reference_gradient(model: torch.nn.Module, weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The full batch's mean-loss gradient at ``weights``, by plain autograd on a copy."""
    torch.nn.utils.vector_to_parameters(weights.float(), model.parameters())
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.double().flatten() for p in model.parameters()]).numpy()


def test_the_optimizer_steps_with_the_whole_batchs_clipped_gradient_under_grad_accum() -> None:
    # SGD with lr=1 and no momentum: each step changes the weights by exactly minus the gradient it used.
    recorder, seen = WeightRecorder(), GradientsSeen()
    model = mlp()
    trainer = Trainer(
        model, make_loader(), "1ep", optimizers=torch.optim.SGD(model.parameters(), lr=1.0), grad_accum=2,
        algorithms=[recorder, GradientClipping("norm", 0.05)], callbacks=[seen], **quiet(),
    )  # fmt: skip
    trainer.fit()
    copy = mlp()
    for batch, (x, y) in enumerate(make_loader()):
        grad = reference_gradient(copy, recorder.weights[batch], x, y)
        assert np.linalg.norm(grad) > 0.1  # clipping is active: clipping each microbatch would differ
        expected = grad * min(1.0, 0.05 / (np.linalg.norm(grad) + 1e-6))
        step = (recorder.weights[batch] - recorder.weights[batch + 1]).numpy()
        np.testing.assert_allclose(step, expected, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(seen.seen[batch].numpy(), expected, rtol=1e-4, atol=1e-7)


def test_gradients_are_unscaled_before_clipping_under_a_grad_scaler() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    start = flat_weights(model)
    state = State(model=model, max_duration="1ba", train_dataloader=[0], optimizers=[torch.optim.SGD(model.parameters(), lr=1.0)])
    state.algorithms = [GradientClipping("norm", 0.05)]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x, y = next(iter(make_loader()))
    scaler.scale(torch.nn.functional.cross_entropy(model(x), y)).backward()
    step_optimizers(state, Loop(state, Logger()), scaler)
    grad = reference_gradient(torch.nn.Linear(4, 3), start, x, y)
    expected = grad * 0.05 / (np.linalg.norm(grad) + 1e-6)
    np.testing.assert_allclose((start - flat_weights(model)).numpy(), expected, rtol=1e-4, atol=1e-7)


def test_a_plain_loop_clips_through_the_runner() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    batches = list(make_loader())
    runner = AlgorithmRunner([GradientClipping("value", 1e-3)], model, optimizer, batches, max_duration="1ba", loggers=[])
    runner.fit_start()
    x, y = batches[0]
    start = flat_weights(model)
    runner.batch_start()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grad = reference_gradient(mlp(), start, x, y)
    runner.after_train_batch()
    optimizer.step()
    runner.batch_end(samples=len(x))
    np.testing.assert_allclose((start - flat_weights(model)).numpy(), np.clip(grad, -1e-3, 1e-3), atol=1e-7)  # fp32 weights


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"clipping_type": "l2", "clipping_threshold": 1.0}, r"clipping_type must be one of \('norm', .*\), got 'l2'"),
        ({"clipping_type": "norm", "clipping_threshold": 0}, "clipping_threshold must be a finite number > 0, got 0"),
        ({"clipping_type": "norm", "clipping_threshold": "1"}, "clipping_threshold must be a finite number > 0, got '1'"),
        (
            {"clipping_type": "adaptive", "clipping_threshold": 0.01, "eps": -1.0},
            r"eps must be a finite number >= 0 \(0 is Composer.s rule\), got -1.0",
        ),
    ],
)
def test_bad_arguments_are_named(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GradientClipping(**arguments)


def test_configs_name_it_gradient_clipping() -> None:
    from composer_swa.config import build_run, validate_config

    config = {
        "model": {"name": "mlp", "hidden": [8]},
        "data": {"train": {"name": "synthetic", "samples": 16, "features": 3, "classes": 2, "batch_size": 8}},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "trainer": {"max_duration": "1ep", "progress_bar": False},
        "algorithms": [{"name": "gradient_clipping", "clipping_type": "adaptive", "clipping_threshold": 0.02}],
    }
    (algorithm,) = build_run(validate_config(config, "t")).algorithms
    assert ALGORITHMS["gradient_clipping"] is GradientClipping
    assert (algorithm.clipping_type, algorithm.clipping_threshold) == ("adaptive", 0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (fp16 with a GradScaler)")
def test_fp16_on_the_gpu_clips_the_unscaled_gradient() -> None:
    # Clipping the scaled gradient (scale 2**16) to 0.05 would leave a norm near 0.05 / 2**16 after the scaler's unscale.
    seen, recorder = GradientsSeen(), WeightRecorder()
    model = torch.nn.Linear(4, 3)
    trainer = Trainer(
        model, make_loader(), "1ep", optimizers=torch.optim.SGD(model.parameters(), lr=1.0), device="cuda",
        precision="fp16", algorithms=[recorder, GradientClipping("norm", 0.05)], callbacks=[seen], **quiet(),
    )  # fmt: skip
    trainer.fit()
    for batch, grad in enumerate(seen.seen):
        if not torch.isfinite(grad).all():
            continue  # the scaler skips this step
        assert float(grad.norm()) == pytest.approx(0.05, rel=1e-3)
        step = recorder.weights[batch] - recorder.weights[batch + 1]
        torch.testing.assert_close(step.cpu(), grad.cpu(), rtol=1e-3, atol=1e-6)
    assert any(torch.isfinite(grad).all() for grad in seen.seen)


# Composer's own facts (its tests/algorithms/test_gradient_clipping.py), with eps=0: its rule has no floor ----


def composer_agc(weight: np.ndarray, grad: np.ndarray, threshold: float) -> np.ndarray:
    """Composer's ``_get_clipped_gradient_coeff`` in NumPy: ``min(1, λ‖W_i‖ / ‖G_i‖)``, 0/0 counted as 1."""
    axes = tuple(range(1, weight.ndim)) if weight.ndim > 1 else None
    weight_norm = np.sqrt((weight**2).sum(axis=axes, keepdims=weight.ndim > 1))
    grad_norm = np.sqrt((grad**2).sum(axis=axes, keepdims=weight.ndim > 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        coefficient = np.nan_to_num(threshold * weight_norm / grad_norm, nan=1.0)
    return grad * np.minimum(coefficient, 1.0)


COMPOSER_CASES = [  # weights, gradient, threshold, Composer's expected clipped gradient
    ([3.0, 4.0], [7.0, 24.0], 0.5, [0.7, 2.4]),
    ([[3.0, 4.0], [9.0, 40.0]], [[7.0, 24.0], [5.0, 12.0]], 0.5, [[0.7, 2.4], [5.0, 12.0]]),
    (
        [[[3.0, 8.0], [2.0, 2.0]], [[1.0, 3.0], [3.0, 9.0]]],
        [[[1.0, 1.0], [3.0, 5.0]], [[1.0, 1.0], [1.0, 1.0]]],
        1 / 3,
        [[[0.5, 0.5], [1.5, 2.5]], [[1.0, 1.0], [1.0, 1.0]]],
    ),
    (
        [[[[3.0], [8.0]], [[2.0], [2.0]]], [[[1.0], [3.0]], [[3.0], [9.0]]]],
        [[[[1.0], [1.0]], [[3.0], [5.0]]], [[[1.0], [1.0]], [[1.0], [1.0]]]],
        1 / 3,
        [[[[0.5], [0.5]], [[1.5], [2.5]]], [[[1.0], [1.0]], [[1.0], [1.0]]]],
    ),
    ([0.0, 0.0], [1.0, 1.0], 1e-4, [0.0, 0.0]),  # a zero weight: Composer zeroes its gradient (our eps floor would not)
    ([1.0, 1.0], [0.0, 0.0], 1e-4, [0.0, 0.0]),
    ([0.0, 0.0], [0.0, 0.0], 1e-4, [0.0, 0.0]),
]


@pytest.mark.parametrize(("weight", "grad", "threshold", "expected"), COMPOSER_CASES)
def test_adaptive_with_eps_zero_gives_composers_results(weight: Any, grad: Any, threshold: float, expected: Any) -> None:
    parameter = torch.nn.Parameter(torch.tensor(weight))
    parameter.grad = torch.tensor(grad)
    apply_gradient_clipping([parameter], "adaptive", threshold, eps=0.0)
    np.testing.assert_allclose(parameter.grad.numpy(), np.array(expected), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(expected, composer_agc(np.array(weight), np.array(grad), threshold), rtol=1e-6, atol=1e-7)


def cnn_with_grads() -> torch.nn.Module:
    """Composer's test CNN: conv filters, Linear weights and biases, gradients of a cross-entropy loss."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, kernel_size=2), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(98, 2), torch.nn.ReLU(),
        torch.nn.Linear(2, 2), torch.nn.Softmax(dim=1),
    )  # fmt: skip
    x, y = torch.rand(4, 1, 8, 8), torch.randint(0, 1, (4,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return model


@pytest.mark.parametrize("clipping_type", ["adaptive", "norm", "value"])
def test_composers_call_clips_a_whole_model_as_the_algorithm_does(clipping_type: str) -> None:
    functional, algorithm = cnn_with_grads(), cnn_with_grads()
    weights = [p.detach().double().numpy().copy() for p in functional.parameters()]
    grads = [p.grad.double().numpy().copy() for p in functional.parameters()]
    apply_gradient_clipping(functional, clipping_type, 0.01, fsdp_enabled=False, eps=0.0)  # Composer's signature
    state = State(model=algorithm, max_duration="1ba", train_dataloader=[0])
    GradientClipping(clipping_type=clipping_type, clipping_threshold=0.01, eps=0.0).apply(
        Event.AFTER_TRAIN_BATCH, state, Logger()
    )
    total = np.sqrt(sum(float((g**2).sum()) for g in grads))
    for index, (mine, theirs) in enumerate(zip(functional.parameters(), algorithm.parameters())):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=0, atol=0)
        want = {
            "adaptive": composer_agc(weights[index], grads[index], 0.01),
            "norm": grads[index] * min(1.0, 0.01 / (total + 1e-6)),
            "value": np.clip(grads[index], -0.01, 0.01),
        }[clipping_type]
        np.testing.assert_allclose(mine.grad.double().numpy(), want, rtol=1e-5, atol=1e-9)


def test_composers_functional_import_paths() -> None:
    import composer_swa.functional as cf
    from composer_swa.algorithms.gradient_clipping import apply_gradient_clipping as from_module

    assert cf.apply_gradient_clipping is from_module is apply_gradient_clipping
    with pytest.raises(ValueError, match=r"clipping_type must be one of \('norm', 'value', 'adaptive'\), got 'l1'"):
        apply_gradient_clipping(cnn_with_grads(), "l1", 0.1)
