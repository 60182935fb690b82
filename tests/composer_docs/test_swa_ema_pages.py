"""Composer's SWA and EMA documentation, run with only the import lines changed (``composer`` → ``composer_swa``).

Sources: the method cards ``composer/algorithms/swa/README.md`` and ``composer/algorithms/ema/README.md``
(the "Composer Trainer" and "Functional Interface" snippets) and the examples in the docstrings of
``composer.algorithms.SWA`` and ``composer.algorithms.EMA``. Each snippet is the documented code between the
``# --- Composer's snippet`` markers. The setup Composer's docs hide (``SimpleModel`` and
``RandomClassificationDataset`` from its test suite, batch size 1) is replaced by a small MLP on local
random data; none of these examples needs a GPU or a download.

Each test replays the same training in a plain PyTorch loop (same initial weights, data order, optimizer
and loss) and checks, against that record and NumPy, the number of optimizer steps and which weights end
in the model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

Weights = dict[str, torch.Tensor]


def model_and_data(batches_per_epoch: int = 10) -> tuple[torch.nn.Module, DataLoader, DataLoader]:
    """Stands in for Composer's hidden setup: ``SimpleModel()`` and ``DataLoader(RandomClassificationDataset())``."""
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(batches_per_epoch, 4, generator=generator), torch.randint(0, 2, (batches_per_epoch,), generator=generator)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return model, DataLoader(TensorDataset(x, y)), DataLoader(TensorDataset(x[:4], y[:4]))


def replay(model: torch.nn.Module, loader: DataLoader, batches: int, lr: float = 0.1) -> Iterator[tuple[int, Weights]]:
    """Plain SGD (our Trainer's default optimizer, ``SGD(lr=0.1)``) with cross-entropy; yields the weights after each step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    step = 0
    while step < batches:
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            step += 1
            yield step, {name: tensor.detach().double().clone() for name, tensor in model.state_dict().items()}
            if step == batches:
                return


def count_steps(optimizer: torch.optim.Optimizer) -> list[int]:
    steps = [0]
    optimizer.register_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
    return steps


def assert_weights(got: dict[str, torch.Tensor], want: dict[str, np.ndarray | torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name].double().numpy(), np.asarray(want[name], dtype=np.float64), rtol=1e-5, atol=1e-6)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]


def test_swa_method_card_trainer_example() -> None:
    model, train_dataloader, eval_dataloader = model_and_data()
    initial = copy.deepcopy(model)
    # --- Composer's snippet (composer/algorithms/swa/README.md), imports changed
    from composer_swa.algorithms import SWA
    from composer_swa.trainer import Trainer

    swa_algorithm = SWA(
        swa_start="1ep",
        swa_end="2ep",
        update_interval="5ba",
    )
    trainer = Trainer(
        model=model,
        train_dataloader=train_dataloader,
        eval_dataloader=eval_dataloader,
        max_duration="3ep",
        algorithms=[swa_algorithm],
    )
    # --- end of the snippet but its last line
    steps = count_steps(trainer.state.optimizers[0])
    trainer.fit()  # the snippet's last line

    assert steps[0] == 30
    # Snapshots after batches 10, 15, 20 (swa_start=1ep to swa_end=2ep, every 5ba); the average replaces the
    # weights at batch 20 and training goes on from it for the third epoch.
    recorded = dict(replay(initial, train_dataloader, 20))
    mean = {name: np.mean([recorded[b][name].numpy() for b in (10, 15, 20)], axis=0) for name in recorded[20]}
    assert swa_algorithm.n_averaged == 3
    assert_weights(swa_algorithm.averaged_weights() or {}, mean)
    assert_weights(swa_algorithm.training_weights or {}, recorded[20])
    from_average = copy.deepcopy(initial)
    from_average.load_state_dict({name: torch.from_numpy(value).float() for name, value in mean.items()})
    *_, (_, final) = replay(from_average, train_dataloader, 10)
    assert_weights(model.state_dict(), final)


def test_swa_docstring_example() -> None:
    model, train_dataloader, eval_dataloader = model_and_data(batches_per_epoch=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = count_steps(optimizer)
    initial = copy.deepcopy(model)
    # --- Composer's snippet (the docstring of composer.algorithms.SWA), imports changed
    from composer_swa.algorithms import SWA
    from composer_swa.trainer import Trainer

    swa_algorithm = SWA(swa_start="6ep", swa_end="8ep")
    trainer = Trainer(
        model=model,
        train_dataloader=train_dataloader,
        eval_dataloader=eval_dataloader,
        max_duration="10ep",
        algorithms=[swa_algorithm],
        optimizers=[optimizer],
    )
    # --- end of the snippet
    trainer.fit()

    assert steps[0] == 30
    recorded = dict(replay(initial, train_dataloader, 24))
    assert swa_algorithm.n_averaged == 3  # the ends of epochs 6, 7 and 8 (update_interval defaults to 1ep)
    mean = {name: np.mean([recorded[b][name].numpy() for b in (18, 21, 24)], axis=0) for name in recorded[24]}
    assert_weights(swa_algorithm.averaged_weights() or {}, mean)


def numpy_ema(recorded: dict[int, Weights], smoothing: float, through: int) -> dict[str, np.ndarray]:
    """The first update copies; each later one keeps ``smoothing`` of the average."""
    ema = {name: tensor.numpy() for name, tensor in recorded[1].items()}
    for step in range(2, through + 1):
        ema = {name: smoothing * value + (1 - smoothing) * recorded[step][name].numpy() for name, value in ema.items()}
    return ema


def test_ema_method_card_trainer_example() -> None:
    model, train_dataloader, _ = model_and_data(batches_per_epoch=20)
    initial = copy.deepcopy(model)
    # --- Composer's snippet (composer/algorithms/ema/README.md), imports changed
    from composer_swa.algorithms import EMA
    from composer_swa.trainer import Trainer

    ema = EMA(half_life="50ba")

    trainer = Trainer(model=model, train_dataloader=train_dataloader, max_duration="1ep", algorithms=[ema])

    trainer.fit()

    model = ema.ema_model
    # --- end of the snippet
    assert ema.n_updates == 20 and ema.smoothing == pytest.approx(2 ** (-1 / 50))
    expected = numpy_ema(dict(replay(initial, train_dataloader, 20)), ema.smoothing, 20)
    assert model is not None
    assert_weights(model.state_dict(), expected)  # the EMA
    assert_weights(trainer.state.model.state_dict(), expected)  # which the model holds after fit


def test_ema_docstring_example() -> None:
    model, train_dataloader, eval_dataloader = model_and_data(batches_per_epoch=12)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = count_steps(optimizer)
    initial = copy.deepcopy(model)
    # --- Composer's snippet (the docstring of composer.algorithms.EMA), imports changed
    from composer_swa.algorithms import EMA

    algorithm = EMA(half_life="1000ba", update_interval="1ba")
    from composer_swa.trainer import Trainer  # the docstring assumes Trainer imported

    trainer = Trainer(
        model=model,
        train_dataloader=train_dataloader,
        eval_dataloader=eval_dataloader,
        max_duration="1ep",
        algorithms=[algorithm],
        optimizers=[optimizer],
    )
    # --- end of the snippet
    trainer.fit()

    assert steps[0] == 12 and algorithm.n_updates == 12
    recorded = dict(replay(initial, train_dataloader, 12))
    expected = numpy_ema(recorded, 2 ** (-1 / 1000), 12)
    assert_weights(model.state_dict(), expected)
    assert_weights(algorithm.training_weights or {}, recorded[12])


def test_ema_method_card_functional_example(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    import composer_swa.functional

    model, train_loader, _ = model_and_data(batches_per_epoch=8)
    initial, _, _ = model_and_data(batches_per_epoch=8)  # the same initial weights
    num_epochs = 2
    seen: list[tuple[Weights, torch.nn.Module]] = []
    original = composer_swa.functional.compute_ema

    def watched(model: torch.nn.Module, ema_model: torch.nn.Module, smoothing: float = 0.99) -> None:
        seen.append(({k: v.detach().double().clone() for k, v in model.state_dict().items()}, ema_model))
        original(model, ema_model, smoothing=smoothing)

    monkeypatch.setattr(composer_swa.functional, "compute_ema", watched)
    # --- Composer's snippet (composer/algorithms/ema/README.md), imports changed
    import copy

    import composer_swa.functional as cf

    def training_loop(model, train_loader):  # type: ignore[no-untyped-def]
        opt = torch.optim.Adam(model.parameters())
        loss_fn = F.cross_entropy
        ema_model = copy.deepcopy(model)
        model.train()

        for epoch in range(num_epochs):  # noqa: B007 - the snippet's loop
            for X, y in train_loader:
                y_hat = model(X)
                loss = loss_fn(y_hat, y)
                loss.backward()
                opt.step()
                opt.zero_grad()
                cf.compute_ema(model, ema_model, smoothing=0.99)

    # --- end of the snippet
    training_loop(model, train_loader)

    assert len(seen) == 16  # one update per optimizer step
    ema_model = seen[-1][1]
    # Unlike the algorithm, the functional EMA starts from a copy of the initial weights, not the first update.
    expected = {name: tensor.double().numpy() for name, tensor in initial.state_dict().items()}
    for weights, _ in seen:
        expected = {name: 0.99 * value + 0.01 * weights[name].numpy() for name, value in expected.items()}
    assert_weights(ema_model.state_dict(), expected)
