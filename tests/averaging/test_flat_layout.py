"""flat_parameters: one buffer behind a model's tensors; the average is the same, and exports still write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from composer_swa import EMA, SWA, State, Trainer
from composer_swa.averaging import FlatAverage, ModelAverage, flat_parameters
from composer_swa.checkpoint import export_weights


def bn_net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_layout_keeps_values_and_parameter_objects_and_the_kernel_reads_one_flat_tensor() -> None:
    model = bn_net()
    parameters = list(model.parameters())
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    (buffer,) = flat_parameters(model)
    assert list(model.parameters()) == parameters and all(p.is_leaf and p.requires_grad for p in parameters)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert buffer.numel() == sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    average = FlatAverage(list(model.parameters()))
    assert average._groups[0].flat_sources() is not None
    model[0].weight.data = model[0].weight.data.clone()  # out of the buffer: the per-tensor path again
    assert average._groups[0].flat_sources() is None


def test_swa_and_ema_averages_equal_numpy_with_the_flat_layout_and_after_a_tensor_leaves_it() -> None:
    model = bn_net()
    flat_parameters(model)
    names = [name for name, _ in model.named_parameters()]
    average = ModelAverage(model, use_buffers=False)
    average.copy_from_model()
    history = [{n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}]
    for step in range(1, 6):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        if step == 3:
            model[3].bias.data = model[3].bias.data.clone()  # the fallback must give the same numbers
        average.interpolate(1.0 / (step + 1))
        history.append({n: p.detach().double().numpy().copy() for n, p in model.named_parameters()})
    state = average.state_dict()
    for name in names:
        expected = np.mean([h[name] for h in history], axis=0)
        np.testing.assert_allclose(state[name].double().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_training_with_swa_and_ema_on_a_flat_model_matches_the_usual_layout_and_exports(tmp_path: Path) -> None:
    def run(flat: bool, folder: Path) -> dict[str, torch.Tensor]:
        model = bn_net()
        if flat:
            flat_parameters(model)
        generator = torch.Generator().manual_seed(1)
        data = [(torch.randn(8, 3, generator=generator), torch.randint(0, 2, (8,), generator=generator)) for _ in range(6)]
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        algorithms = [SWA(swa_start="2ba", update_interval="1ba"), EMA(half_life="2ba", replace_at_fit_end=False)]
        trainer = Trainer(model, data, "2ep", optimizers=optimizer, algorithms=algorithms, progress_bar=False, loggers=[])
        trainer.fit()
        files = json.loads(export_weights(trainer.state, folder).read_text())["files"]
        return {f"{file}:{k}": v for file in files for k, v in load_file(folder / file).items()}

    usual, flat = run(False, tmp_path / "usual"), run(True, tmp_path / "flat")
    assert sorted(usual) == sorted(flat) and any(key.startswith("SWA-average") for key in flat)
    for key in usual:
        torch.testing.assert_close(flat[key], usual[key], rtol=1e-6, atol=1e-6)


def test_export_of_a_flat_model_writes_each_tensor_on_its_own(tmp_path: Path) -> None:
    model = bn_net()
    flat_parameters(model)
    state = State(model=model, max_duration="1ep", train_dataloader=[0])
    export_weights(state, tmp_path)
    written = load_file(tmp_path / "model.safetensors")
    assert sorted(written) == sorted(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(written[name], tensor)
