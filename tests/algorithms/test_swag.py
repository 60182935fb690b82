"""SWAG: its moments against NumPy from recorded snapshots, its samples against the covariance formula,
the SWA mean at swa_end, exact resume, the posterior file, and its place among the other algorithms."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from composer_swa import SWA, SWAG, AlgorithmConflictError, Trainer
from composer_swa.averaging import SWAGPosterior, bayesian_predict, predict, recompute_batch_norm
from composer_swa.checkpoint import export_weights
from composer_swa.integrations import AlgorithmRunner
from tests.algorithms.helpers import train_plain_loop
from tests.helpers import assert_equal_weights, make_loader, mlp, quiet, train_recording_weights


def run_recording(swag: SWAG, max_duration: str = "20ba") -> tuple[torch.nn.Module, dict[int, dict[str, torch.Tensor]]]:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.5)
    runner = AlgorithmRunner([swag], model, optimizer, list(make_loader()), max_duration, loggers=[])
    runner.fit_start()
    recorded = train_recording_weights(runner, model, optimizer)
    runner.fit_end()
    return model, recorded


def test_mean_variance_and_deviations_equal_numpy_from_the_recorded_snapshots() -> None:
    """Snapshots after batches 4, 6, ..., 20 (9 of them) into a ring of 3 columns: it wraps around twice."""
    swag = SWAG(swa_start="4ba", swa_end="20ba", update_interval="2ba", max_rank=3)
    _, recorded = run_recording(swag)
    posterior = swag.posterior()
    steps = list(range(4, 21, 2))
    assert swag.n_averaged == 9 and swag.moments is not None
    assert (swag.moments.filled, swag.moments.next_column) == (3, 0)  # 9 columns written into 3 slots
    names = [name for name, _ in mlp().named_parameters()]
    assert sorted(posterior.variance) == sorted(names) == sorted(posterior.deviations)
    for name in names:
        snapshots = np.stack([recorded[step][name].double().numpy() for step in steps])
        mean = snapshots.mean(axis=0)
        variance = (snapshots**2).mean(axis=0) - mean**2
        running_means = np.cumsum(snapshots, axis=0) / np.arange(1, 10).reshape(-1, *[1] * mean.ndim)
        deviations = (snapshots - running_means)[-3:]  # θ_i − θ̄_i, the last three, oldest first
        np.testing.assert_allclose(posterior.mean[name].numpy(), mean, rtol=0, atol=1e-6)
        np.testing.assert_allclose(posterior.variance[name].numpy(), np.maximum(variance, 1e-30), rtol=0, atol=2e-6)
        np.testing.assert_allclose(posterior.deviations[name].numpy(), deviations, rtol=0, atol=1e-6)


def test_before_the_ring_is_full_the_columns_are_every_deviation_so_far() -> None:
    swag = SWAG(swa_start="4ba", swa_end="20ba", update_interval="2ba", max_rank=20)
    _, recorded = run_recording(swag)
    assert swag.posterior().rank == 9
    name = "0.weight"
    snapshots = np.stack([recorded[step][name].double().numpy() for step in range(4, 21, 2)])
    expected = snapshots - np.cumsum(snapshots, axis=0) / np.arange(1, 10)[:, None, None]
    np.testing.assert_allclose(swag.posterior().deviations[name].numpy(), expected, rtol=0, atol=1e-6)


def fit(algorithm: Any, max_duration: str = "4ep", **kwargs: Any) -> Trainer:
    trainer = Trainer(mlp(batch_norm=True), make_loader(), max_duration, algorithms=[algorithm], seed=0, **quiet(**kwargs))
    trainer.fit()
    return trainer


def test_at_swa_end_the_model_holds_exactly_what_swa_gives() -> None:
    arguments = {"swa_start": "0.5dur", "update_interval": "1ba", "schedule_swa_lr": True, "swa_lr": 0.05}
    with_swa, with_swag = fit(SWA(**arguments)), fit(SWAG(**arguments, max_rank=4))
    assert_equal_weights(with_swag.state.model.state_dict(), with_swa.state.model.state_dict())


#: Draws for the covariance test. With Σ the covariance, an entry of the sample covariance has standard error
#: sqrt((Σ_ii Σ_jj + Σ_ij²) / N); the test allows 5 of them (a false alarm about once in 10⁶ per entry).
DRAWS = 6_000


def draws(posterior: SWAGPosterior, names: list[str], **kwargs: Any) -> np.ndarray:
    generator = torch.Generator().manual_seed(1234)
    samples = [posterior.sample(generator=generator, **kwargs) for _ in range(DRAWS)]
    return np.stack([np.concatenate([s[n].double().numpy().ravel() for n in names]) for s in samples])


@pytest.mark.parametrize("diagonal_only", [False, True])
def test_the_sample_covariance_matches_the_formula(diagonal_only: bool) -> None:
    """A 6-parameter model, K = 3: the covariance of many draws is scale·(Σ_diag + D̂D̂ᵀ/(K − 1)) (or scale·Σ_diag)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    data = make_loader(features=2, classes=2)
    swag = SWAG(swa_start="0.25dur", update_interval="1ba", max_rank=3)
    Trainer(model, data, "3ep", optimizers=torch.optim.SGD(model.parameters(), lr=0.5), algorithms=[swag], **quiet()).fit()
    posterior = swag.posterior()
    names = sorted(posterior.variance)
    variance = np.concatenate([posterior.variance[n].double().numpy().ravel() for n in names])
    columns = np.concatenate([posterior.deviations[n].double().numpy().reshape(3, -1) for n in names], axis=1).T
    expected = np.diag(variance) if diagonal_only else np.diag(variance) + columns @ columns.T / 2
    expected *= 0.3
    samples = draws(posterior, names, scale=0.3, diagonal_only=diagonal_only)
    mean = np.concatenate([posterior.mean[n].double().numpy().ravel() for n in names])
    stderr_mean = np.sqrt(np.diag(expected) / DRAWS)
    assert np.all(np.abs(samples.mean(axis=0) - mean) <= 5 * stderr_mean)
    stderr = np.sqrt((np.outer(np.diag(expected), np.diag(expected)) + expected**2) / DRAWS)
    assert np.all(np.abs(np.cov(samples, rowvar=False) - expected) <= 5 * stderr)


def test_scale_zero_gives_the_mean_and_a_seed_gives_one_sample() -> None:
    swag = SWAG(swa_start="4ba", swa_end="20ba", update_interval="2ba", max_rank=3)
    model, _ = run_recording(swag)
    posterior = swag.posterior()
    zero = posterior.sample(scale=0.0)
    assert all(torch.equal(zero[name], posterior.mean[name]) for name in posterior.mean)
    first = posterior.sample(generator=torch.Generator().manual_seed(5))
    swag.sample(generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(first[name], model.state_dict()[name]) for name in first)


def test_the_posterior_file_restores_a_sampler_without_a_trainer(tmp_path: Path) -> None:
    swag = SWAG(swa_start="0.5dur", update_interval="1ba", max_rank=3)
    trainer = fit(swag)
    export_weights(trainer.state, tmp_path)
    loaded = SWAGPosterior.from_file(tmp_path / "SWAG-posterior.safetensors")
    live = swag.posterior()
    assert loaded.rank == 3 and sorted(loaded.mean) == sorted(live.mean)
    for kind in ("mean", "variance", "deviations"):
        assert_equal_weights(getattr(loaded, kind), getattr(live, kind))
    first = loaded.sample(generator=torch.Generator().manual_seed(2))
    second = live.sample(generator=torch.Generator().manual_seed(2))
    assert_equal_weights(first, second)
    own = tmp_path / "own.safetensors"
    live.save(own)
    assert_equal_weights(SWAGPosterior.from_file(own).tensors(), live.tensors())
    (tmp_path / "bad.safetensors").write_bytes((tmp_path / "SWAG-average.safetensors").read_bytes())
    with pytest.raises(ValueError, match=r"bad.safetensors is not a SWAG posterior: tensor '.*' is not named mean"):
        SWAGPosterior.from_file(tmp_path / "bad.safetensors")


def test_state_dict_round_trip_resumes_exactly() -> None:
    """Stopped after batch 11 (4 snapshots, ring of 3 wrapped once), saved weights-only, resumed: same end."""

    def run(**kwargs: Any) -> tuple[torch.Tensor, SWAG]:
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        swag = SWAG(swa_start="5ba", swa_end="0.9dur", update_interval="2ba", max_rank=3)
        weights, saved = train_plain_loop(model, optimizer, [swag], **kwargs)
        return weights if saved is None else saved, swag  # type: ignore[return-value]

    uninterrupted, reference = run()
    saved, _ = run(stop_at=11)
    assert saved["algorithms"]["SWAG"]["n_averaged"] == 4
    resumed, swag = run(saved=saved)
    assert torch.equal(resumed, uninterrupted)
    for kind in ("mean", "variance", "deviations"):
        assert_equal_weights(getattr(swag.posterior(), kind), getattr(reference.posterior(), kind))


def test_max_rank_is_locked_once_a_snapshot_is_taken() -> None:
    swag = SWAG(swa_start="5ba", update_interval="2ba", max_rank=3)
    model = mlp()
    _, saved = train_plain_loop(model, torch.optim.SGD(model.parameters(), lr=0.1), [swag], stop_at=7)
    assert saved is not None
    resumed, wider = mlp(), SWAG(swa_start="5ba", update_interval="2ba", max_rank=4)
    with pytest.raises(ValueError, match="max_rank"):
        train_plain_loop(resumed, torch.optim.SGD(resumed.parameters(), lr=0.1), [wider], saved=saved)


def test_swa_and_swag_in_one_run_are_refused_naming_both() -> None:
    with pytest.raises(AlgorithmConflictError) as refused:
        fit_plain = Trainer(mlp(), make_loader(), "4ep", algorithms=[SWA(), SWAG()], **quiet())
        fit_plain.fit()
    message = str(refused.value)
    assert "SWA and SWAG both take charge of 'window_average'" in message
    assert "SWAG's mean is SWA's average, so a run with SWAG needs no SWA" in message


def test_swa_and_swag_with_windows_apart_compose() -> None:
    swa = SWA(swa_start="0.25dur", swa_end="0.5dur", update_interval="1ba")
    swag = SWAG(swa_start="0.5dur", update_interval="1ba", max_rank=3)
    Trainer(mlp(), make_loader(), "4ep", algorithms=[swa, swag], **quiet()).fit()
    assert swa.finished and swag.finished and swag.n_averaged == 9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_rank": 0}, "max_rank must be a positive integer, got 0"),
        ({"num_samples": 2.0}, "num_samples must be a positive integer, got 2.0"),
        ({"scale": -1}, "scale must be a number >= 0, got -1"),
        ({"bn_batches": 0}, "bn_batches must be a positive integer, got 0"),
        ({"swa_start": "0.9dur", "swa_end": "0.5dur"}, "swa_start"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SWAG(**kwargs)


def test_bayesian_predict_averages_the_softmax_of_samples_each_with_its_batch_norm_pass() -> None:
    swag = SWAG(swa_start="0.5dur", update_interval="1ba", max_rank=3)
    trainer = fit(swag)
    model, train, evaluation = trainer.state.model, make_loader(), make_loader(seed=1)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    ensemble = bayesian_predict(
        swag.posterior(), model, evaluation, num_samples=4, bn_dataloader=train, bn_batches=2,
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    assert_equal_weights(model.state_dict(), before)  # the model got its weights back
    generator, expected = torch.Generator().manual_seed(3), []
    for _ in range(4):
        swag.posterior().sample_into(model, 0.5, generator)
        recompute_batch_norm(model, itertools.islice(train, 2))
        with torch.no_grad():
            expected.append(torch.cat([torch.softmax(model.eval()(x), dim=1) for x, _ in evaluation]))
    torch.testing.assert_close(ensemble.probabilities, torch.stack(expected).mean(0))
    assert torch.equal(ensemble.targets, torch.cat([y for _, y in evaluation]))
    single = predict(model, evaluation)
    assert not torch.allclose(single.probabilities, ensemble.probabilities)  # four draws, not one
    with pytest.raises(ValueError, match="pass bn_dataloader"):
        bayesian_predict(swag.posterior(), model, evaluation, num_samples=1)
