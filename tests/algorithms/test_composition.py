"""Algorithms together: combinations either work as documented or fail at FIT_START naming both."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from composer_swa import EMA, LAWA, SWA, SWATS, Algorithm, AlgorithmConflictError, Trainer
from tests.helpers import WeightRecorder, flat_weights, make_loader, mlp, quiet


def fit(algorithms: list[Algorithm], optimizer: str = "sgd", max_duration: str = "4ep") -> Trainer:
    model = mlp()
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, make_loader(), max_duration, optimizers=opt, algorithms=algorithms, **quiet())
    trainer.fit()
    return trainer


def test_swats_then_swa_and_ema_in_one_run() -> None:
    recorder = WeightRecorder()
    swats = SWATS(switch_at="0.25dur")  # batch 4 of 16
    swa = SWA(swa_start="0.5dur", update_interval="2ba", schedule_swa_lr=True, swa_lr=0.01)
    ema = EMA(smoothing=0.9, replace_at_fit_end=False, eval_with_average=False)
    trainer = fit([recorder, swats, swa, ema], optimizer="adam")

    assert swats.switched_at_batch == 4 and isinstance(trainer.state.optimizers[0], torch.optim.SGD)
    # SWA annealed the SGD optimizer that SWATS installed: from its LR at batch 8, 8 of 10 steps toward swa_lr
    # (swa_end is the end of the run, so the LR is not restored).
    sgd_lr = swats.estimates[0].sgd_lrs[0]
    assert trainer.state.optimizers[0].param_groups[0]["lr"] == pytest.approx(sgd_lr + (0.01 - sgd_lr) * 0.8)
    # The model holds SWA's average of batches 8, 10, ..., 16; EMA kept its own average beside it.
    expected = np.mean([recorder.weights[b].numpy() for b in range(8, 17, 2)], axis=0)
    np.testing.assert_allclose(flat_weights(trainer.state.model).numpy(), expected, rtol=0, atol=1e-6)
    assert ema.n_updates == 16 and ema.average is not None
    # The trace says who acted when.
    trace = trainer.engine.trace
    assert trace[("SWATS", "batch_start")] == 1
    assert trace[("SWA", "batch_end")] == 5
    assert trace[("EMA", "batch_end")] == 16
    summary = trainer.engine.trace_summary()
    assert "SWATS: batch_start×1" in summary and "EMA: batch_end×16" in summary


@pytest.mark.parametrize(
    ("algorithms", "resource", "fix"),
    [
        (lambda: [SWA(), EMA()], "final_weights", "replace_at_fit_end=False"),
        (lambda: [EMA(), LAWA()], "final_weights", "replace_at_fit_end=False"),
        (
            lambda: [SWA(swa_end="0.9dur", update_interval="1ba", eval_with_average=True), EMA(replace_at_fit_end=False)],
            "eval_weights",
            "eval_with_average=False",
        ),
        (lambda: [SWA(schedule_swa_lr=True, swa_end="0.9dur", update_interval="1ba"), SWATS()], "lr", "schedule_swa_lr=False"),
        (lambda: [SWATS(), SWATS(switch_at="1ep")], "optimizer", "only one of them replace the optimizer"),
    ],
)
def test_conflicting_pairs_fail_at_fit_start_naming_both(algorithms, resource: str, fix: str) -> None:  # type: ignore[no-untyped-def]
    pair = algorithms()
    with pytest.raises(AlgorithmConflictError, match=resource) as error:
        fit(pair, optimizer="adam")
    message = str(error.value)
    assert pair[0].name in message and pair[1].name in message and fix in message


def test_the_documented_resolutions_work() -> None:
    fit([SWA(), EMA(replace_at_fit_end=False)])
    fit([SWA(swa_start="0.5dur", swa_end="0.75dur"), EMA()])
    fit([EMA(), LAWA(replace_at_fit_end=False, eval_with_average=False)])
    fit(
        [SWATS(switch_at="0.25dur"), SWA(schedule_swa_lr=True, swa_start="0.5dur", swa_end="0.9dur", update_interval="1ba")],
        optimizer="adam",
    )


def test_swats_switching_after_swa_takes_the_lr_fails_at_fit_start() -> None:
    with pytest.raises(AlgorithmConflictError, match="set switch_at no later than swa_start") as error:
        fit([SWATS(switch_at="0.75dur"), SWA(schedule_swa_lr=True, swa_start="0.5dur")], optimizer="adam")
    assert "swa_start='0.5dur'" in str(error.value)


def test_the_run_log_records_the_trace(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from composer_swa.loggers import JSONLinesLogger

    model = mlp()
    swa, ema = SWA(swa_start="0.5dur", update_interval="1ba"), EMA(smoothing=0.9, replace_at_fit_end=False)
    log = JSONLinesLogger(tmp_path / "metrics.jsonl")
    Trainer(model, make_loader(), "2ep", algorithms=[swa, ema], progress_bar=False, loggers=[log]).fit()
    log.close()
    messages = [json.loads(line).get("message", "") for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    trace = next(message for message in messages if message.startswith("algorithm trace"))
    assert "SWA: batch_end×5, fit_end×1, fit_start×1" in trace
    assert "EMA: batch_end×8" in trace


def reference_ema(snapshots: list[np.ndarray], smoothing: float) -> np.ndarray:
    ema = snapshots[0]
    for weights in snapshots[1:]:
        ema = smoothing * ema + (1 - smoothing) * weights
    return ema


@pytest.mark.parametrize("swa_end", ["1.0dur", "0.75dur"])
def test_list_order_does_not_change_what_swa_and_ema_read(swa_end: str) -> None:
    """At swa_end SWA swaps its average in; an EMA listed after it still snapshots the live weights there."""

    def run(order: str) -> tuple[WeightRecorder, SWA, EMA, torch.Tensor]:
        recorder = WeightRecorder()
        swa = SWA(swa_start="0.5dur", swa_end=swa_end, update_interval="1ba")
        ema = EMA(smoothing=0.8, replace_at_fit_end=False, eval_with_average=False)
        trainer = fit([recorder, swa, ema] if order == "swa first" else [recorder, ema, swa])
        return recorder, swa, ema, flat_weights(trainer.state.model)

    def average(algorithm: SWA | EMA) -> np.ndarray:
        weights = algorithm.averaged_weights()
        assert weights is not None
        return torch.cat([weights[name].double().flatten() for name, _ in mlp().named_parameters()]).numpy()

    runs = [run("swa first"), run("ema first")]
    for recorder, swa, ema, _ in runs:
        # The independent reference: the live weights the first-listed recorder saw after every batch.
        live = [recorder.weights[b].numpy() for b in range(1, 17)]
        np.testing.assert_allclose(average(ema), reference_ema(live, 0.8), rtol=0, atol=1e-6)
        np.testing.assert_allclose(average(swa), np.mean(live[7 : 12 if swa_end == "0.75dur" else 16], axis=0), atol=1e-6)
        assert swa.finished and ema.n_updates == 16
    assert torch.equal(runs[0][3], runs[1][3])
    if swa_end == "1.0dur":  # nothing trains after the swap, so each algorithm alone gives the same
        alone_swa = fit([SWA(swa_start="0.5dur", update_interval="1ba")])
        assert torch.equal(flat_weights(alone_swa.state.model), runs[0][3])
        alone_ema = EMA(smoothing=0.8, replace_at_fit_end=False, eval_with_average=False)
        fit([alone_ema])
        np.testing.assert_array_equal(average(alone_ema), average(runs[1][2]))
