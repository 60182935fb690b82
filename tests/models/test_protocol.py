"""A ComposerModel is called through its protocol wherever the model runs; a plain module keeps the batch rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from composer_swa import SWA, ComposerModel, Trainer
from composer_swa.averaging.bn import recompute_batch_norm
from composer_swa.integrations import AlgorithmRunner
from composer_swa.loggers import LoggerDestination
from composer_swa.metrics import CrossEntropy, metric_values
from tests.helpers import make_loader, quiet


class Counting(ComposerModel):
    """Counts every protocol call and keeps what each one received."""

    def __init__(self, batch_norm: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 3), *([torch.nn.BatchNorm1d(3)] if batch_norm else []))
        self.forwards: list[Any] = []
        self.losses: list[tuple[Any, Any]] = []
        self.eval_forwards: list[Any] = []
        self.updates: list[tuple[Any, Any, Metric]] = []
        self.accuracy = MulticlassAccuracy(num_classes=3, average="micro")

    def forward(self, batch: Any) -> torch.Tensor:
        self.forwards.append(batch)
        inputs, _ = batch
        return self.net(inputs)

    def loss(self, outputs: Any, batch: Any) -> torch.Tensor:
        self.losses.append((outputs, batch))
        return F.cross_entropy(outputs, batch[1])

    def eval_forward(self, batch: Any, outputs: Any | None = None) -> Any:
        self.eval_forwards.append(batch)
        return super().eval_forward(batch, outputs)

    def get_metrics(self, is_train: bool = False) -> dict[str, Metric]:
        return {"MulticlassAccuracy": self.accuracy, "CrossEntropy": CrossEntropy()}

    def update_metric(self, batch: Any, outputs: Any, metric: Metric) -> None:
        self.updates.append((batch, outputs, metric))
        metric.update(outputs, batch[1])


class Recorder(LoggerDestination):
    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.metrics.append(dict(metrics))

    def log_message(self, message: str, step: int) -> None:
        pass

    def close(self) -> None:
        pass


def test_training_calls_forward_then_loss_once_per_microbatch_with_the_batch_itself() -> None:
    train = make_loader(samples=48, batch_size=16)  # 3 batches an epoch
    model = Counting()
    trainer = Trainer(model, train, "2ep", grad_accum=2, **quiet())
    model.forwards.clear()  # nothing before fit
    trainer.fit()

    assert len(model.losses) == 2 * 3 * 2  # epochs x batches x microbatches
    assert len(model.forwards) == len(model.losses)
    first_inputs, _ = next(iter(train))
    assert torch.equal(model.forwards[0][0], first_inputs[:8])  # forward(batch) got the (inputs, targets) microbatch
    assert all(batch is forwarded for (_, batch), forwarded in zip(model.losses, model.forwards))
    assert model.logger is trainer.logger  # as Composer's Trainer sets it


def test_evaluation_calls_eval_forward_and_update_metric_per_batch_on_copies_of_the_metrics() -> None:
    train, evaluation = make_loader(samples=32), make_loader(samples=40, batch_size=16, seed=1)  # 16 + 16 + 8
    model = Counting()
    recorder = Recorder()
    trainer = Trainer(model, train, "1ep", eval_dataloader=evaluation, progress_bar=False, loggers=[recorder])
    trainer.fit()
    model.eval_forwards.clear(), model.updates.clear()

    values = trainer.eval()

    assert len(model.eval_forwards) == 3 and len(model.updates) == 3 * 2
    assert model.training  # put back in training mode after the pass
    metrics = trainer.state.eval_metrics["eval"]
    assert set(metrics) == {"MulticlassAccuracy", "CrossEntropy"} and all(isinstance(m, Metric) for m in metrics.values())
    assert metrics["MulticlassAccuracy"] is not model.accuracy and model.accuracy.update_count == 0  # a deep copy
    inputs, targets = (t.numpy() for t in evaluation.dataset.tensors)  # type: ignore[attr-defined]
    with torch.no_grad():
        logits = model.net(torch.from_numpy(inputs)).double().numpy()
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    per_batch = [-log_probs[start : start + 16][np.arange(len(targets[start : start + 16])), targets[start : start + 16]].mean()
                 for start in (0, 16, 32)]  # fmt: skip
    expected = {
        "eval/MulticlassAccuracy": float((logits.argmax(axis=1) == targets).mean()),
        "eval/CrossEntropy": float(np.mean(per_batch)),  # Composer's CrossEntropy: the mean of the batches' means
    }
    assert values == pytest.approx(expected, rel=1e-5)
    assert recorder.metrics[-1] == values  # logged under the same names


def test_the_loss_a_step_backpropagates_is_the_models_loss_summed_as_composer_does() -> None:
    class Parts(ComposerModel):
        def __init__(self, kind: str) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Linear(4, 3)
            self.kind = kind

        def forward(self, batch: Any) -> torch.Tensor:
            return self.net(batch[0])

        def loss(self, outputs: Any, batch: Any) -> Any:
            per_sample = F.cross_entropy(outputs, batch[1], reduction="none")
            if self.kind == "tuple":
                return per_sample, 2 * per_sample  # each part averaged, then summed: 3x the mean
            return {"ce": per_sample, "total": 3 * per_sample.mean()}  # "total" is the loss

    batch = next(iter(make_loader()))
    for kind in ("tuple", "dict"):
        model = Parts(kind)
        start = model.net.weight.detach().clone()
        reference = torch.nn.Linear(4, 3)
        reference.load_state_dict(model.net.state_dict())
        (3 * F.cross_entropy(reference(batch[0]), batch[1])).backward()
        Trainer(model, [batch], "1ba", optimizers=torch.optim.SGD(model.parameters(), lr=1.0), **quiet()).fit()
        assert torch.allclose(model.net.weight, start - reference.weight.grad, atol=1e-6), kind


def test_loss_fn_with_a_composer_model_and_a_plain_models_own_loss_method_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"loss_fn=.* was given with a ComposerModel \(Counting\)"):
        Trainer(Counting(), make_loader(), "1ba", loss_fn=F.cross_entropy, **quiet())

    class PlainWithLoss(torch.nn.Linear):
        def loss(self, outputs: torch.Tensor, batch: Any) -> torch.Tensor:
            raise AssertionError("never called")

    with pytest.raises(ValueError, match=r"PlainWithLoss defines a loss\(\) method but is a plain torch\.nn\.Module"):
        Trainer(PlainWithLoss(4, 3), make_loader(), "1ba", **quiet())
    # Naming the loss says which one is meant: the model's method is then simply not the loss.
    Trainer(PlainWithLoss(4, 3), make_loader(), "1ba", loss_fn=F.cross_entropy, **quiet()).fit()


def test_the_batch_norm_pass_runs_forward_on_whole_batches() -> None:
    model = Counting(batch_norm=True)
    loader = make_loader(samples=48, batch_size=16)
    recompute_batch_norm(model, loader)  # the default forward: the model's protocol

    assert len(model.forwards) == 3 and all(isinstance(batch, list) and len(batch) == 2 for batch in model.forwards)
    inputs = loader.dataset.tensors[0]  # type: ignore[attr-defined]
    with torch.no_grad():
        hidden = model.net[0](inputs).double().numpy()
    assert np.allclose(model.net[1].running_mean.numpy(), hidden.mean(axis=0), atol=1e-5)
    assert np.allclose(model.net[1].running_var.numpy(), hidden.var(axis=0, ddof=1), atol=1e-5)


def test_swa_in_the_trainer_refreshes_batch_norm_through_forward() -> None:
    model = Counting(batch_norm=True)
    loader = make_loader(samples=32, batch_size=16)
    trainer = Trainer(model, loader, "2ep", algorithms=[SWA(swa_start="0.5dur", update_interval="1ba")], **quiet())
    trainer.fit()
    # 4 training forwards (one per step), then SWA's pass over the 2 training batches at the end
    assert len(model.losses) == 4 and len(model.forwards) == 4 + 2


def test_a_users_loop_with_the_runner_calls_forward_for_swa_and_reports_its_own_metrics() -> None:
    model = Counting(batch_norm=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = make_loader(samples=32, batch_size=16)
    runner = AlgorithmRunner([SWA(swa_start="0.5dur", update_interval="1ba")], model, optimizer, loader, "2ep", loggers=[])
    runner.fit_start()
    for _ in range(2):
        for batch in loader:
            runner.batch_start()
            optimizer.zero_grad()
            model.loss(model(batch), batch).backward()
            optimizer.step()
            runner.batch_end()
        runner.eval_start()
        runner.eval_end({"accuracy": 0.75})
    runner.fit_end()

    assert len(model.forwards) == 4 + 2  # the user's 4 steps, then SWA's batch-norm pass
    assert metric_values(runner.state.eval_metrics) == {"eval/accuracy": 0.75}


def test_a_plain_module_keeps_loss_and_accuracy_and_a_regressor_only_loss() -> None:
    evaluation = make_loader(samples=40, batch_size=16, seed=1)
    trainer = Trainer(torch.nn.Linear(4, 3), make_loader(), "1ba", eval_dataloader=evaluation, **quiet())
    values = trainer.eval()
    inputs, targets = evaluation.dataset.tensors  # type: ignore[attr-defined]
    with torch.no_grad():
        logits = trainer.state.model(inputs).double()
    accuracy = float((logits.argmax(1) == targets).double().mean())
    assert values == pytest.approx({"eval/loss": float(F.cross_entropy(logits, targets)), "eval/accuracy": accuracy})
    assert sorted(trainer.state.eval_metrics["eval"]) == ["accuracy", "loss"]

    x = torch.randn(20, 2)
    regression = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    regressor = Trainer(torch.nn.Linear(2, 1), regression, "1ba", eval_dataloader=regression, loss_fn=F.mse_loss, **quiet())
    with torch.no_grad():
        expected = float(F.mse_loss(regressor.state.model(x).double(), x.sum(1, keepdim=True).double(), reduction="sum")) / 20
    assert regressor.eval() == pytest.approx({"eval/loss": expected})


def test_an_evaluation_leaves_an_earlier_evaluations_metrics_as_they_were() -> None:
    data = make_loader(samples=32)
    trainer = Trainer(torch.nn.Linear(4, 3), data, "1ba", eval_dataloader=data, **quiet())
    first = trainer.eval()
    kept = trainer.state.eval_metrics
    with torch.no_grad():
        trainer.state.model.weight.mul_(-1)
    second = trainer.eval()
    assert second != first and metric_values(kept) == first
