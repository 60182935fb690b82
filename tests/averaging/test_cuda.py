"""CUDA paths of the averaging kernel. CI has no GPU: these skip there and run on a GPU machine."""

from __future__ import annotations

import pytest
import torch

from composer_swa.averaging import FlatAverage, ModelAverage

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_fp32_average_of_a_bf16_model_on_the_gpu() -> None:
    torch.manual_seed(0)
    values = [torch.randn(4096, device="cuda").to(torch.bfloat16) for _ in range(64)]
    live = [values[0].clone()]
    average = FlatAverage(live)
    average.copy_from_sources()
    for n, value in enumerate(values[1:], start=1):
        live[0].copy_(value)
        average.interpolate(1.0 / (n + 1))
    exact = torch.stack([v.double() for v in values]).mean(0)
    assert average.views()[0].dtype == torch.float32 and average.views()[0].is_cuda
    assert (average.views()[0].double() - exact).abs().max().item() < 1e-6


def test_offloaded_average_matches_the_on_device_one() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.BatchNorm1d(64)).cuda()
    on_device, offloaded = ModelAverage(model), ModelAverage(model, device="cpu")
    for average in (on_device, offloaded):
        average.copy_from_model()
    for n in range(1, 8):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        on_device.interpolate(1.0 / (n + 1))
        offloaded.interpolate(1.0 / (n + 1))
    for name, tensor in on_device.state_dict().items():
        assert offloaded.state_dict()[name].device.type == "cpu"
        torch.testing.assert_close(offloaded.state_dict()[name], tensor.cpu(), rtol=1e-6, atol=1e-6)
