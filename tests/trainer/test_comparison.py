"""The final comparison table: each set of weights evaluated as an independent, hand-written evaluation would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from composer_swa import EMA, LAWA, SWA, Trainer
from composer_swa.checkpoint import export_weights
from composer_swa.metrics import metric_values
from composer_swa.trainer.comparison import evaluate_every_weights, final_weights_name
from tests.helpers import make_loader, mlp


def _by_hand(
    weights: dict[str, torch.Tensor], train_inputs: torch.Tensor, eval_set: tuple[torch.Tensor, ...], refresh: bool
) -> dict[str, float]:
    """``weights`` in a fresh MLP, evaluated with NumPy; ``refresh``: batch norm recomputed from the training inputs."""
    model = mlp(batch_norm=True, seed=123)
    model.load_state_dict(weights)
    if refresh:  # the BN layer's input is the first Linear's output: its exact mean and unbiased variance
        weight, bias = weights["0.weight"].double().numpy(), weights["0.bias"].double().numpy()
        hidden = train_inputs.double().numpy() @ weight.T + bias
        model[1].running_mean.copy_(torch.from_numpy(hidden.mean(axis=0)))
        model[1].running_var.copy_(torch.from_numpy(hidden.var(axis=0, ddof=1)))
    inputs, targets = eval_set
    with torch.no_grad():
        logits = model.eval()(inputs).double().numpy()
    log_probs = logits - logits.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    labels = targets.numpy()
    loss = -log_probs[np.arange(len(labels)), labels].mean()
    return {"eval/loss": float(loss), "eval/accuracy": float((logits.argmax(1) == labels).mean())}


def test_every_average_and_the_live_weights_match_a_hand_evaluation(tmp_path: Path) -> None:
    train, evaluation = make_loader(samples=64, seed=0), make_loader(samples=48, batch_size=20, seed=1)
    algorithms = [
        SWA(swa_start="0.5dur", update_interval="1ba"),  # the final model holds SWA's average
        EMA(half_life="3ba", replace_at_fit_end=False, eval_with_average=False),
        LAWA(window=3, update_interval="1ba", replace_at_fit_end=False, eval_with_average=False),
    ]
    trainer = Trainer(
        mlp(batch_norm=True), train, eval_dataloader=evaluation, max_duration="3ep",
        optimizers=None, algorithms=algorithms, progress_bar=False, loggers=[],
    )  # fmt: skip
    trainer.fit()
    final_state = {name: tensor.clone() for name, tensor in trainer.state.model.state_dict().items()}
    final_metrics = metric_values(trainer.state.eval_metrics)

    table = evaluate_every_weights(trainer)

    assert list(table) == ["live", "SWA", "EMA", "LAWA"] and final_weights_name(trainer) == "SWA"
    # The final model, its metrics and the logs are as they were.
    after = trainer.state.model.state_dict()
    assert all(torch.equal(after[name], tensor) for name, tensor in final_state.items())
    assert metric_values(trainer.state.eval_metrics) == final_metrics and trainer.state.algorithms == algorithms
    export_weights(trainer.state, tmp_path)
    train_inputs = train.dataset.tensors[0]  # type: ignore[attr-defined]
    eval_set = evaluation.dataset.tensors  # type: ignore[attr-defined]
    files = {"live": "SWA-training", "SWA": "SWA-average", "EMA": "EMA-average", "LAWA": "LAWA-average"}
    for column, stem in files.items():
        expected = _by_hand(load_file(tmp_path / f"{stem}.safetensors"), train_inputs, eval_set, refresh=column != "live")
        assert table[column] == expect_close(expected), column
    # The live weights differ from the averages: the columns compare different models.
    assert table["live"]["eval/loss"] != table["EMA"]["eval/loss"]


def expect_close(expected: dict[str, float]) -> dict[str, object]:
    return {key: pytest.approx(value, rel=1e-5, abs=1e-6) for key, value in expected.items()}


def test_without_algorithms_the_live_weights_are_the_final_model() -> None:
    data = make_loader(samples=32)
    trainer = Trainer(mlp(), data, eval_dataloader=data, max_duration="1ep", progress_bar=False, loggers=[])
    trainer.fit()
    assert evaluate_every_weights(trainer) == {"live": metric_values(trainer.state.eval_metrics)}
    assert final_weights_name(trainer) == "live"


def test_without_an_eval_loader_there_is_nothing_to_compare() -> None:
    trainer = Trainer(mlp(), make_loader(samples=32), max_duration="1ba", progress_bar=False, loggers=[])
    trainer.fit()
    assert evaluate_every_weights(trainer) == {}
