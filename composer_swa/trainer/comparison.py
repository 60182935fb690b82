"""The final comparison: the live weights and every average, each evaluated by the Trainer's own ``eval``.

After ``fit()`` the model holds one set of weights (an average, when an algorithm swapped it in);
the averaging algorithms keep the others (``training_weights``, ``averaged_weights()``). Each set is
loaded into the model in turn, evaluated on the eval loader, and the final weights are put back
exactly. Averages get a batch-norm statistics pass first (their running statistics were averaged,
or describe other weights); the live weights keep the statistics they trained with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from composer_swa.algorithms.swag import SWAG
from composer_swa.averaging.bayesian import Prediction, bayesian_predict, predict
from composer_swa.averaging.bn import batch_norm_layers, recompute_batch_norm
from composer_swa.averaging.model_average import named_state_tensors
from composer_swa.distributed.sharded import is_dtensor, local_part
from composer_swa.events import Resource
from composer_swa.state import unique_keys
from composer_swa.trainer.calibration import calibration_metrics

if TYPE_CHECKING:
    from composer_swa.algorithms.averaging_algorithm import AveragingAlgorithm
    from composer_swa.trainer.trainer import Trainer

__all__: list[str] = []

#: The seed of the SWAG ensemble's draws in the final table (one seed on every process: one model per draw).
ENSEMBLE_SEED = 0

#: The footnote a table of these metrics needs.
BATCH_NORM_NOTE = "averages: batch-norm statistics recomputed over the training data; live: its own running statistics"


def _averaging_algorithms(trainer: Trainer) -> list[tuple[str, AveragingAlgorithm]]:
    from composer_swa.algorithms.averaging_algorithm import AveragingAlgorithm

    algorithms = trainer.state.algorithms
    return [(key, a) for key, a in zip(unique_keys(algorithms), algorithms) if isinstance(a, AveragingAlgorithm)]


def _holder(trainer: Trainer) -> tuple[str, AveragingAlgorithm] | None:
    """The algorithm whose average the final model holds (it swapped it in at the end and kept the live weights)."""
    for key, algorithm in _averaging_algorithms(trainer):
        if algorithm.training_weights is not None and Resource.FINAL_WEIGHTS in algorithm.owned_resources(trainer.state):
            return key, algorithm
    return None


def final_weights_name(trainer: Trainer) -> str:
    """``"live"``, or the key (``"SWA"``, ``"EMA"``...) of the average the final model holds."""
    holder = _holder(trainer)
    return holder[0] if holder is not None else "live"


@torch.no_grad()
def _load(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    for name, target in named_state_tensors(model):
        if name not in weights:
            continue  # a tensor the average does not track keeps its final value
        source = weights[name].to(target.device)
        target.copy_(local_part(source, target) if is_dtensor(target) and not is_dtensor(source) else source)


@contextmanager
def _quiet(trainer: Trainer) -> Iterator[None]:
    """``trainer.eval()`` without algorithms or callbacks (no average is swapped in), logging nothing,
    leaving ``eval_metrics`` and the model's weights as they were."""
    state, engine = trainer.state, trainer.engine
    saved = (state.algorithms, state.callbacks, list(trainer.logger.destinations), state.eval_metrics, state.outputs)
    last_eval = trainer._last_eval_batch
    final = {name: tensor.detach().clone() for name, tensor in named_state_tensors(state.model)}
    state.algorithms, state.callbacks = [], []
    trainer.logger.destinations[:] = []
    engine.refresh()
    try:
        yield
    finally:
        _load(state.model, final)
        state.algorithms, state.callbacks, trainer.logger.destinations[:], state.eval_metrics, state.outputs = saved
        trainer._last_eval_batch = last_eval
        engine.refresh()


def evaluate_every_weights(trainer: Trainer) -> dict[str, dict[str, float]]:
    """Eval metrics of the live weights and of every average, ``{"live": {...}, "SWA": {...}, ...}``.

    Keys are ``"live"`` then each averaging algorithm's key (its class name, numbered when repeated),
    with the kind appended where an algorithm exports several (``"PostHocEMA sigma_rel0.05"``). A run
    with :class:`~composer_swa.SWAG` adds ``"SWAG ensemble"``: its Bayesian model average
    (``num_samples`` draws at ``scale``, seed ``ENSEMBLE_SEED``, a batch-norm pass over ``bn_batches`` per
    draw), and every row gets ``eval/nll`` and ``eval/ece`` (:mod:`composer_swa.trainer.calibration`);
    the ensemble's row has no ``eval/loss`` (it is not one model the loss function could score).
    Every process must call it under torch.distributed (evaluation reduces across processes). Returns
    ``{}`` without an eval loader. The model's weights, ``eval_metrics`` and the logs are unchanged.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from composer_swa import EMA, Trainer
        >>> data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,))), batch_size=8)
        >>> trainer = Trainer(torch.nn.Linear(4, 2), data, eval_dataloader=data, max_duration="2ep",
        ...                   algorithms=[EMA(half_life="2ba")], progress_bar=False, loggers=[])
        >>> trainer.fit()
        >>> table = evaluate_every_weights(trainer)
        >>> list(table), sorted(table["EMA"])
        (['live', 'EMA'], ['eval/accuracy', 'eval/loss'])
    """
    state = trainer.state
    if state.eval_dataloader is None:
        return {}
    holder = _holder(trainer)
    live = holder[1].training_weights if holder is not None else None
    sets: list[tuple[str, dict[str, torch.Tensor] | None, bool]] = [("live", live, False)]
    for key, algorithm in zip(unique_keys(state.algorithms), state.algorithms):
        averages = algorithm.exported_weights()  # an AveragingAlgorithm's average, PostHocEMA's profiles...
        averages.pop("training", None)  # the live weights: "live" above
        averages.pop("posterior", None)  # SWAG's distribution, not weights: its ensemble is evaluated below
        sets += [(key if kind == "average" else f"{key} {kind}", weights, True) for kind, weights in averages.items()]
    swags = [(key, a) for key, a in zip(unique_keys(state.algorithms), state.algorithms) if isinstance(a, SWAG) and a.n_averaged]
    refresh = bool(batch_norm_layers(state.model))
    results: dict[str, dict[str, float]] = {}
    with _quiet(trainer):
        final = {name: tensor.detach().clone() for name, tensor in named_state_tensors(state.model)}
        for name, weights, is_average in sets:
            if is_average and weights is None:
                continue  # no snapshot was taken (e.g. the run ended before the window)
            _load(state.model, weights if weights is not None else final)
            if is_average and refresh:
                recompute_batch_norm(state.model, state.train_dataloader, state.run_forward)
            results[name] = dict(trainer.eval())
            if swags:  # a run with SWAG compares calibration too
                results[name].update(_calibration(predict(state.model, state.eval_dataloader), state.device))
        for key, swag in swags:
            _load(state.model, final)
            ensemble = bayesian_predict(
                swag.posterior(), state.model, state.eval_dataloader, num_samples=swag.num_samples, scale=swag.scale,
                bn_dataloader=state.train_dataloader, bn_batches=swag.bn_batches, bn_forward=state.run_forward,
                generator=torch.Generator().manual_seed(ENSEMBLE_SEED),
            )  # fmt: skip
            results[f"{key} ensemble"] = _calibration(ensemble, state.device)
    return results


def _calibration(prediction: Prediction, device: torch.device) -> dict[str, float]:
    if prediction.targets is None:
        return {}
    return {
        f"eval/{name}": value
        for name, value in calibration_metrics(prediction.probabilities, prediction.targets, device=device).items()
    }
