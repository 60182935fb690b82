from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from composer_swa import SWA, Callback, Event, State, Trainer
from composer_swa.loggers import Logger
from tests.algorithms.helpers import train_plain_loop
from tests.helpers import WeightRecorder, flat_weights, make_loader, mlp, quiet


class LRRecorder(Callback):
    """The LR each optimizer step uses, by the batch count it completes."""

    def __init__(self) -> None:
        self.lrs: dict[int, float] = {}

    def batch_start(self, state: State, logger: Logger) -> None:
        self.lrs[state.timestamp.batch_count + 1] = state.optimizers[0].param_groups[0]["lr"]


def train(
    swa: SWA, max_duration: str = "4ep", loader: DataLoader | None = None, **kwargs: Any
) -> tuple[torch.nn.Module, WeightRecorder]:
    model = kwargs.pop("model", None) or mlp()
    recorder = WeightRecorder()
    optimizer = kwargs.pop("optimizers", None) or torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    trainer = Trainer(
        model, loader or make_loader(), max_duration, algorithms=[recorder, swa], optimizers=optimizer, **quiet(**kwargs)
    )
    trainer.fit()
    return model, recorder


def test_final_model_is_the_average_of_the_snapshots_on_the_grid() -> None:
    swa = SWA(swa_start="5ba", swa_end="1.0dur", update_interval="3ba")  # 16 batches: s=5, k=3
    model, recorder = train(swa)
    grid = [5, 8, 11, 14]
    expected = torch.stack([recorder.weights[b] for b in grid]).mean(0)
    assert swa.n_averaged == len(grid) and swa.finished
    torch.testing.assert_close(flat_weights(model), expected, rtol=1e-6, atol=1e-7)


def test_swa_end_on_the_grid_is_included() -> None:
    swa = SWA(swa_start="0.5dur", swa_end="14ba", update_interval="2ba")
    model, recorder = train(swa, max_duration="14ba")
    expected = torch.stack([recorder.weights[b] for b in (7, 9, 11, 13)]).mean(0)
    torch.testing.assert_close(flat_weights(model), expected, rtol=1e-6, atol=1e-7)
    swa = SWA(swa_start="6ba", swa_end="14ba", update_interval="2ba")
    model, recorder = train(swa, max_duration="14ba")
    expected = torch.stack([recorder.weights[b] for b in (6, 8, 10, 12, 14)]).mean(0)
    torch.testing.assert_close(flat_weights(model), expected, rtol=1e-6, atol=1e-7)


def test_epoch_interval_updates_on_epoch_boundaries() -> None:
    swa = SWA(swa_start="0.3dur", update_interval="1ep")  # 6 epochs x 4 batches; s = ceil(7.2) = 8
    model, recorder = train(swa, max_duration="6ep")
    expected = torch.stack([recorder.weights[b] for b in (8, 12, 16, 20, 24)]).mean(0)
    torch.testing.assert_close(flat_weights(model), expected, rtol=1e-6, atol=1e-7)


def test_start_at_zero_includes_the_initial_weights() -> None:
    swa = SWA(swa_start="0ba", update_interval="2ba")
    model, recorder = train(swa, max_duration="4ba")
    expected = torch.stack([recorder.weights[b] for b in (0, 2, 4)]).mean(0)
    torch.testing.assert_close(flat_weights(model), expected, rtol=1e-6, atol=1e-7)


def test_earlier_swa_end_continues_training_from_the_average() -> None:
    swa = SWA(swa_start="2ba", swa_end="8ba", update_interval="2ba")
    model, recorder = train(swa, max_duration="12ba")
    average = torch.stack([recorder.weights[b] for b in (2, 4, 6, 8)]).mean(0)
    assert swa.finished and swa.n_averaged == 4
    assert not torch.allclose(flat_weights(model), average)  # four more steps from the average


def test_batch_norm_statistics_are_recomputed_through_the_averaged_model() -> None:
    loader = make_loader(samples=50, batch_size=16)  # a last batch of 2
    swa = SWA(swa_start="0.5dur", update_interval="1ba")
    model, _ = train(swa, model=mlp(batch_norm=True), loader=loader)
    inputs = loader.dataset.tensors[0]
    with torch.no_grad():
        bn_input = model[0](inputs).double()
    torch.testing.assert_close(model[1].running_mean.double(), bn_input.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[1].running_var.double(), bn_input.var(0), rtol=1e-5, atol=1e-6)
    assert model[1].num_batches_tracked.item() == 4


def test_without_bn_update_float_buffers_are_averaged_and_integers_copied() -> None:
    class BufferRecorder(WeightRecorder):
        def apply(self, event: Event, state: State, logger: Logger) -> None:
            bn = state.model[1]
            self.weights[state.timestamp.batch_count] = torch.cat(
                [bn.running_mean.clone(), bn.num_batches_tracked.double().view(1)]
            )

    swa = SWA(swa_start="12ba", update_interval="2ba", bn_update=False)
    model = mlp(batch_norm=True)
    recorder = BufferRecorder()
    Trainer(model, make_loader(), "16ba", algorithms=[recorder, swa], **quiet()).fit()
    expected_mean = torch.stack([recorder.weights[b][:-1] for b in (12, 14, 16)]).mean(0)
    torch.testing.assert_close(model[1].running_mean, expected_mean.float(), rtol=1e-6, atol=1e-7)
    assert model[1].num_batches_tracked.item() == 16


def test_average_stays_fp32_for_a_bf16_model() -> None:
    model = mlp().to(torch.bfloat16)
    swa = SWA(swa_start="0.5dur", update_interval="1ba", bn_update=False)
    recorder = WeightRecorder()
    loader = make_loader()
    trainer = Trainer(model, loader, "2ep", algorithms=[recorder, swa], precision="bf16", **quiet())
    trainer.fit()
    assert swa.average is not None
    average = torch.cat([t.double().flatten() for name, t in swa.average.state_dict().items()])
    assert all(t.dtype == torch.float32 for t in swa.average.state_dict().values())
    expected = torch.stack([recorder.weights[b] for b in range(4, 9)]).mean(0)
    torch.testing.assert_close(average, expected, rtol=1e-6, atol=1e-7)


def test_linear_and_cosine_annealing_to_swa_lr() -> None:
    for strategy in ("linear", "cos"):
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.9**step)
        lrs = LRRecorder()
        swa = SWA(
            swa_start="4ba", update_interval="1ba", schedule_swa_lr=True, anneal_strategy=strategy, anneal_steps=5, swa_lr=0.05
        )
        Trainer(
            model,
            make_loader(),
            "16ba",
            optimizers=optimizer,
            schedulers=scheduler,
            algorithms=[swa],
            callbacks=[lrs],
            step_schedulers_every_batch=True,
            **quiet(),
        ).fit()
        assert [lrs.lrs[b] for b in (1, 2, 3, 4)] == pytest.approx([0.9**k for k in range(4)])
        start = 0.9**4  # the LR in effect at swa_start, set by the user's scheduler after batch 4
        for t in range(1, 6):
            if strategy == "linear":
                expected = start + (0.05 - start) * t / 5
            else:
                expected = 0.05 + (start - 0.05) * (1 + math.cos(math.pi * t / 5)) / 2
            assert lrs.lrs[4 + t] == pytest.approx(expected)
        assert [lrs.lrs[b] for b in range(10, 17)] == pytest.approx([0.05] * 7)
        assert scheduler.last_epoch == 4  # the user's scheduler did not step in the window


def test_swa_lr_none_holds_the_starting_lr_and_schedulers_resume_after_swa_end() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    lrs = LRRecorder()
    swa = SWA(swa_start="2ba", swa_end="6ba", update_interval="1ba", schedule_swa_lr=True)
    Trainer(
        model,
        make_loader(),
        "8ba",
        optimizers=optimizer,
        schedulers=scheduler,
        algorithms=[swa],
        callbacks=[lrs],
        step_schedulers_every_batch=True,
        **quiet(),
    ).fit()
    assert [lrs.lrs[b] for b in range(1, 9)] == pytest.approx([1.0, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.125])


def test_cyclic_lr_follows_the_paper_and_averages_at_the_low_point() -> None:
    model = mlp()
    lrs = LRRecorder()
    recorder = WeightRecorder()
    swa = SWA(swa_start="4ba", update_interval="3ba", cyclic_lr=(0.3, 0.03))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    Trainer(model, make_loader(), "16ba", optimizers=optimizer, algorithms=[recorder, swa], callbacks=[lrs], **quiet()).fit()
    for cycle_start in (4, 7, 10, 13):
        for j in (1, 2, 3):
            assert lrs.lrs[cycle_start + j] == pytest.approx((1 - j / 3) * 0.3 + (j / 3) * 0.03)
    expected = torch.stack([recorder.weights[b] for b in (4, 7, 10, 13, 16)]).mean(0)
    torch.testing.assert_close(flat_weights(model), expected, rtol=1e-6, atol=1e-7)


def test_eval_with_average_then_live_weights_restored() -> None:
    loader = make_loader()
    swa = SWA(swa_start="2ba", swa_end="16ba", update_interval="1ba", eval_with_average=True)
    seen: dict[int, torch.Tensor] = {}

    class EvalWeights(Callback):
        def eval_start(self, state: State, logger: Logger) -> None:
            seen[state.timestamp.batch_count] = flat_weights(state.model)

    _, recorder = train(swa, max_duration="16ba", eval_dataloader=loader, eval_interval="4ba", callbacks=[EvalWeights()])
    expected_at_8 = torch.stack([recorder.weights[b] for b in range(2, 9)]).mean(0)
    torch.testing.assert_close(seen[8], expected_at_8, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(recorder.weights[9], expected_at_8)  # training went on from the live weights


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"swa_start": "0.8dur", "swa_end": "0.5dur"},
            "swa_start must be before swa_end, got swa_start='0.8dur', swa_end='0.5dur'",
        ),
        ({"swa_start": "1.5dur"}, r"swa_start in 'dur' must lie in \[0, 1\], got '1.5dur'"),
        ({"swa_start": "0.7dr"}, "swa_start: invalid time string '0.7dr'"),
        ({"update_interval": "100sp"}, "update_interval must be at least 1 in 'ba' or 'ep', got '100sp'"),
        ({"update_interval": "0.1dur"}, "update_interval must be at least 1 in 'ba' or 'ep'"),
        ({"anneal_steps": -1}, "anneal_steps must be an int >= 0, got -1"),
        ({"anneal_steps": "10ep"}, "anneal_steps must be an int >= 0, got '10ep': it counts optimizer steps"),
        ({"anneal_strategy": "exp"}, "anneal_strategy must be one of .*got 'exp'"),
        ({"swa_lr": 0.0}, "swa_lr must be > 0"),
        ({"cyclic_lr": (0.01, 0.1)}, "cyclic_lr must be"),
        ({"cyclic_lr": (0.1, 0.01), "schedule_swa_lr": True}, "choose one"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SWA(**kwargs)


def test_construction_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SWA()
        SWA(swa_start="1ep", swa_end="2ep", update_interval="5ba", schedule_swa_lr=True, swa_lr=0.01)


def test_times_checked_against_the_run_at_fit_start() -> None:
    with pytest.raises(
        ValueError, match=r"swa_end='3ep' resolves to batch 12, past the end of the run \(max_duration='2ep' = 8 batches\)"
    ):
        train(SWA(swa_start="1ep", swa_end="3ep"), max_duration="2ep")
    with pytest.raises(ValueError, match="holds no update"):
        train(SWA(swa_start="5ba", swa_end="7ba", update_interval="1ep"), max_duration="2ep")
    with pytest.warns(UserWarning, match="single update"):
        train(SWA(swa_start="5ba", swa_end="7ba", update_interval="4ba"), max_duration="2ep")


def test_state_dict_round_trip_resumes_exactly() -> None:
    """Stop inside the window, save everything weights-only, rebuild every object, continue: same end."""

    def run(**kwargs: Any) -> tuple[torch.Tensor, dict[str, Any] | None]:
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        swa = SWA(swa_start="5ba", update_interval="2ba", schedule_swa_lr=True, swa_lr=0.05, anneal_steps=3)
        return train_plain_loop(model, optimizer, [swa], **kwargs)

    uninterrupted, _ = run()
    _, saved = run(stop_at=7)
    assert saved is not None and saved["algorithms"]["SWA"]["n_averaged"] == 2
    resumed, _ = run(saved=saved)
    assert torch.equal(resumed, uninterrupted)


def test_trainer_eval_after_fit_evaluates_the_average() -> None:
    loader = make_loader(samples=50, batch_size=16)
    swa = SWA(swa_start="0.5dur", update_interval="1ba")
    recorder = WeightRecorder()
    model = mlp(batch_norm=True)
    trainer = Trainer(model, loader, "4ep", eval_dataloader=loader, algorithms=[recorder, swa], **quiet())
    trainer.fit()
    # Rebuild the model from the recorded snapshots by hand and evaluate it independently.
    reference = mlp(batch_norm=True)
    average = torch.stack([recorder.weights[b] for b in range(8, 17)]).mean(0)
    torch.nn.utils.vector_to_parameters(average.float(), reference.parameters())
    reference[1].load_state_dict(model[1].state_dict())  # statistics from the pass, checked in another test
    reference.eval()
    x, y = loader.dataset.tensors
    with torch.no_grad():
        expected_loss = torch.nn.functional.cross_entropy(reference(x), y).item()
    assert trainer.eval()["eval/loss"] == pytest.approx(expected_loss, rel=1e-5)
