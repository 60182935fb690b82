from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa.averaging import recompute_batch_norm
from composer_swa.model_calls import statistics_forward


def net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def dataset(samples: int = 37) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(
        torch.randn(samples, 3, generator=generator) * 3 + 5, torch.randint(0, 2, (samples,), generator=generator)
    )


def test_statistics_equal_the_dataset_moments_with_a_partial_last_batch() -> None:
    model, data = net(), dataset(37)
    recompute_batch_norm(model, DataLoader(data, batch_size=8))  # 8, 8, 8, 8, 5
    with torch.no_grad():
        bn_input = model[0](data.tensors[0]).double()
    torch.testing.assert_close(model[1].running_mean.double(), bn_input.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model[1].running_var.double(), bn_input.var(0, unbiased=True), rtol=1e-5, atol=1e-5)
    assert model[1].num_batches_tracked.item() == 5


def test_torch_update_bn_weights_batches_not_samples() -> None:
    """The reference we improve on: equal batch weights miss the true mean with uneven batches."""
    model, data = net(), dataset(37)
    loader = DataLoader(data, batch_size=32)  # 32 and 5
    torch.optim.swa_utils.update_bn(((x,) for x, _ in loader), model)
    torch_mean = model[1].running_mean.clone()
    recompute_batch_norm(model, loader)
    with torch.no_grad():
        true_mean = model[0](data.tensors[0]).mean(0)
    assert (torch_mean - true_mean).abs().max() > 1e-3
    torch.testing.assert_close(model[1].running_mean, true_mean, rtol=1e-5, atol=1e-5)


def test_conv_batch_norm_and_dict_batches_with_a_custom_forward() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.BatchNorm1d(3))
    signals = torch.randn(20, 2, 10)
    batches = [{"signal": signals[i : i + 6]} for i in range(0, 20, 6)]
    seen = recompute_batch_norm(model, batches, forward=lambda batch: model(batch["signal"]))
    with torch.no_grad():
        bn_input = model[0](signals).double()
    assert seen == 20
    torch.testing.assert_close(model[1].running_mean.double(), bn_input.mean(dim=(0, 2)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model[1].running_var.double(), bn_input.var(dim=(0, 2)), rtol=1e-5, atol=1e-5)


def test_dropout_is_off_and_modes_are_restored() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(3))
    model.train()
    model[1].eval()
    x = torch.randn(64, 3)
    recompute_batch_norm(model, [(x, None)])
    torch.testing.assert_close(model[1].running_mean, x.mean(0), rtol=1e-5, atol=1e-5)
    assert model[0].training and not model[1].training


def test_no_batch_norm_means_no_pass() -> None:
    calls = []
    assert recompute_batch_norm(torch.nn.Linear(2, 2), [(torch.zeros(1, 2), None)], forward=calls.append) == 0
    assert calls == []


def test_empty_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="saw no input"):
        recompute_batch_norm(net(), [])


class _OwnForwardBatchNorm2d(torch.nn.BatchNorm2d):
    """A subclass with its own forward: the pass measures its input instead of reading its buffers."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return super().forward(input)


@pytest.mark.parametrize("layer_type", [torch.nn.BatchNorm2d, _OwnForwardBatchNorm2d])
def test_conv_statistics_over_uneven_batches_match_numpy_and_momentum_is_restored(layer_type: type) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 5, 3), layer_type(5, momentum=0.3))
    model[1].running_mean.fill_(float("nan"))  # stale values must not leak into the result
    images = torch.randn(23, 2, 7, 6) * 2 + 3
    batches = [(images[i : i + size], None) for i, size in ((0, 9), (9, 2), (11, 12))]
    assert recompute_batch_norm(model, batches) == 23
    with torch.no_grad():
        bn_input = model[0](images).double().numpy()
    channels_last = np.moveaxis(bn_input, 1, -1).reshape(-1, 5)
    np.testing.assert_allclose(model[1].running_mean.double().numpy(), channels_last.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model[1].running_var.double().numpy(), channels_last.var(0, ddof=1), rtol=1e-5, atol=1e-6)
    assert model[1].momentum == 0.3 and model[1].num_batches_tracked.item() == 3


def test_more_batches_than_one_fold_and_microbatches() -> None:
    model, data = net(), dataset(37)
    x, y = data.tensors
    batches = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 36, 4)] * 5  # 90 forwards: more than one fold
    forward = statistics_forward(model, microbatches=2)
    assert recompute_batch_norm(model, batches, forward) == 180
    with torch.no_grad():
        bn_input = model[0](data.tensors[0][:36]).double().numpy()
    np.testing.assert_allclose(model[1].running_mean.double().numpy(), bn_input.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model[1].running_var.double().numpy(), np.tile(bn_input, (5, 1)).var(0, ddof=1), rtol=1e-5)
