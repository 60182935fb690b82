from __future__ import annotations

import numpy as np
import pytest
import torch

from composer_swa.averaging import FlatAverage, ModelAverage
from composer_swa.averaging.model_average import named_state_tensors


def test_running_mean_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    snapshots = [[rng.standard_normal((3, 4)), rng.standard_normal(5)] for _ in range(6)]
    live = [torch.tensor(t, dtype=torch.float32) for t in snapshots[0]]
    average = FlatAverage(live)
    average.copy_from_sources()
    for n, snapshot in enumerate(snapshots[1:], start=1):
        for tensor, value in zip(live, snapshot):
            tensor.copy_(torch.tensor(value))
        average.interpolate(1.0 / (n + 1))
    for view, index in zip(average.views(), range(2)):
        expected = np.mean([s[index] for s in snapshots], axis=0)
        np.testing.assert_allclose(view.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_ema_weight_matches_the_recurrence() -> None:
    live = [torch.tensor([1.0, -2.0])]
    average = FlatAverage(live)
    average.copy_from_sources()
    expected = np.array([1.0, -2.0])
    for step in range(5):
        live[0].copy_(torch.tensor([float(step), float(step * 2)]))
        average.interpolate(1 - 0.9)
        expected = 0.9 * expected + 0.1 * np.array([step, step * 2])
    np.testing.assert_allclose(average.views()[0].numpy(), expected, rtol=1e-6)


def test_bf16_sources_average_in_fp32() -> None:
    torch.manual_seed(0)
    values = [torch.randn(1000).to(torch.bfloat16) for _ in range(50)]
    live = [values[0].clone()]
    average = FlatAverage(live)
    average.copy_from_sources()
    bf16_running = values[0].clone()
    for n, value in enumerate(values[1:], start=1):
        live[0].copy_(value)
        average.interpolate(1.0 / (n + 1))
        bf16_running.lerp_(value, 1.0 / (n + 1))
    exact = torch.stack([v.double() for v in values]).mean(0)
    assert average.views()[0].dtype == torch.float32
    fp32_error = (average.views()[0].double() - exact).abs().max().item()
    bf16_error = (bf16_running.double() - exact).abs().max().item()
    assert fp32_error < 1e-6 < bf16_error


def test_reads_sources_by_reference() -> None:
    parameter = torch.nn.Parameter(torch.zeros(3))
    average = FlatAverage([parameter])
    average.copy_from_sources()
    parameter.data = torch.full((3,), 4.0)  # storage replaced, as after some in-place module surgery
    average.interpolate(0.5)
    assert average.views()[0].tolist() == [2.0, 2.0, 2.0]


def test_offloaded_average_lives_on_the_cpu() -> None:
    live = [torch.ones(4, dtype=torch.float16)]
    average = FlatAverage(live, device="cpu")
    average.copy_from_sources()
    assert average.views()[0].device.type == "cpu" and average.views()[0].dtype == torch.float32


def test_integer_buffers_are_copied_not_averaged() -> None:
    model = torch.nn.BatchNorm1d(2)
    average = ModelAverage(model)
    model.num_batches_tracked.fill_(3)
    average.copy_from_model()
    model.num_batches_tracked.fill_(10)
    average.interpolate(0.5)
    assert average.state_dict()["num_batches_tracked"].item() == 10
    assert average.state_dict()["num_batches_tracked"].dtype == torch.long
    model.num_batches_tracked.fill_(99)
    average.copy_to_model()
    assert model.num_batches_tracked.item() == 10


def test_swap_restores_the_live_weights_exactly() -> None:
    model = torch.nn.Linear(3, 2)
    average = ModelAverage(model)
    average.copy_from_model()
    with torch.no_grad():
        model.weight.add_(1.0)
    live = {k: v.clone() for k, v in model.state_dict().items()}
    with average.swapped_into_model():
        torch.testing.assert_close(model.weight, average.state_dict()["weight"])
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, live[name])


def test_load_state_dict_names_what_does_not_match() -> None:
    average = ModelAverage(torch.nn.Linear(3, 2))
    with pytest.raises(KeyError, match=r"missing \['bias'\]"):
        average.load_state_dict({"weight": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match=r"'weight' has shape \(3, 3\), the model has \(2, 3\)"):
        average.load_state_dict({"weight": torch.zeros(3, 3), "bias": torch.zeros(2)})


def test_names_are_the_model_s_own_and_shared_tensors_count_once() -> None:
    wrapped_child = torch.nn.Sequential()
    wrapped_child.module = torch.nn.Linear(2, 2)  # a child named like DDP's attribute keeps its name
    assert [name for name, _ in named_state_tensors(wrapped_child)] == ["module.weight", "module.bias"]
    shared = torch.nn.Linear(2, 2)
    model = torch.nn.Sequential(shared, shared)
    assert [name for name, _ in named_state_tensors(model)] == ["0.weight", "0.bias"]
