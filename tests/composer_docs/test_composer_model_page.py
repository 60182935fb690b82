"""Composer's "ComposerModel" page (``docs/source/composer_model.rst``), run with only the import lines changed.

Each snippet sits between ``# --- Composer's snippet`` markers, as documented, with ``composer`` imports
renamed to ``composer_swa``. What the page leaves to the reader is supplied around it, and substitutes
stand in where a snippet cannot run here:

- ``torchvision`` is not installed: ``torchvision.models.resnet18()`` is a small local network with
  ResNet-18's 1000 output classes (the ``torchvision`` name is bound to a stand-in namespace, so the
  snippets' lines are unchanged), trained on 24 random 3x8x8 images.
- ``train_dataloader # standard pytorch dataloader`` and ``val_dataloader`` are local random data.
- The "full example of a validation implementation" elides ``forward``/``loss`` with ``...``: they are
  the first snippet's. The "Multiple Metrics" lines (``model.train_metrics = ...`` with ``self.``
  names the page never defines) run inside such a model's ``__init__``, whose ``get_metrics`` returns them.
- The BERT example downloads ``google-bert/bert-base-uncased``: the same class is built with
  ``from_config`` from a 2-layer ``BertConfig`` (random weights, no download).
- "Logging Results" names ``InMemoryLogger``; a small recording ``LoggerDestination`` shows what is logged.
- The YOLOX example needs MMDetection (``mmdet``, ``mmcv``) and Composer's ``MMDetModel``, an object
  detection wrapper outside composer_swa's scope: it is not ported.

The checks: the number of optimizer steps (``loss()`` once per step), the weights trained, the page's
validation loop against the Trainer's evaluation, and each metric against NumPy.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa.loggers import LoggerDestination


def _tiny_resnet18() -> torch.nn.Module:
    """Stands in for ``torchvision.models.resnet18()``: conv, batch norm, pooling, 1000 logits."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 1000),
    )


torchvision = types.SimpleNamespace(models=types.SimpleNamespace(resnet18=_tiny_resnet18))  # for `import torchvision`


def images(samples: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, 3, 8, 8, generator=generator)
    data = TensorDataset(inputs, torch.randint(0, 1000, (samples,), generator=generator))
    return DataLoader(data, batch_size=8)


class Recorder(LoggerDestination):
    def __init__(self) -> None:
        self.logged: list[dict[str, float]] = []

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.logged.append(dict(metrics))

    def log_message(self, message: str, step: int) -> None:
        pass

    def close(self) -> None:
        pass


# --- Composer's snippet: "Using your own Model" ------------------------------------------------------
import torch.nn.functional as F  # noqa: E402  (the snippet's imports; `import torchvision` is the stand-in above)

from composer_swa.models import ComposerModel  # noqa: E402


class ResNet18(ComposerModel):
    def __init__(self):
        super().__init__()
        self.model = torchvision.models.resnet18()

    def forward(self, batch):  # batch is the output of the dataloader
        # specify how batches are passed through the model
        inputs, _ = batch
        return self.model(inputs)

    def loss(self, outputs, batch):
        # pass batches and `forward` outputs to the loss
        _, targets = batch
        return F.cross_entropy(outputs, targets)


# --- end of snippet -----------------------------------------------------------------------------------


def test_your_own_model_trains_with_one_loss_call_per_optimizer_step() -> None:
    torch.manual_seed(0)
    train_dataloader = images(24, seed=0)  # 3 batches an epoch
    calls: list[Any] = []

    class Counted(ResNet18):
        def loss(self, outputs: Any, batch: Any) -> torch.Tensor:
            calls.append(batch)
            return super().loss(outputs, batch)

    # --- Composer's snippet: "The Composer model can then be passed to our trainer." (ResNet18 -> Counted)
    import torch.optim as optim

    from composer_swa import Trainer

    model = Counted()
    optimizer = optim.Adam(model.parameters(), lr=0.0001)
    train_dataloader  # standard pytorch dataloader  # noqa: B018

    trainer = Trainer(model=model, optimizers=optimizer, train_dataloader=train_dataloader, max_duration="10ep")
    start = model.model[5].weight.detach().clone()
    trainer.fit()
    # --- end of snippet

    assert trainer.state.timestamp.batch.value == 10 * 3 and len(calls) == 10 * 3  # one loss() per optimizer step
    first_inputs, first_targets = next(iter(train_dataloader))
    assert torch.equal(calls[0][0], first_inputs) and torch.equal(calls[0][1], first_targets)  # the whole batch
    assert optimizer.state_dict()["state"][0]["step"] == 30  # Adam stepped once per batch
    assert not torch.equal(model.model[5].weight, start)


# --- Composer's snippet: "A full example of a validation implementation" (the `...` is the first snippet's
# forward and loss; this class is the page's, named ComposerClassifier there too) -------------------------
import torchmetrics  # noqa: E402


class ComposerClassifier(ComposerModel):
    def __init__(self):
        super().__init__()
        self.model = torchvision.models.resnet18()
        self.train_accuracy = torchmetrics.classification.MulticlassAccuracy(num_classes=1000, average="micro")
        self.val_accuracy = torchmetrics.classification.MulticlassAccuracy(num_classes=1000, average="micro")

    forward = ResNet18.forward  # the page's `...`
    loss = ResNet18.loss

    def eval_forward(self, batch, outputs):
        if outputs:
            return outputs
        inputs, _ = batch
        outputs = self.model(inputs)
        return outputs

    def update_metric(self, batch, outputs, metric):
        _, targets = batch
        metric.update(outputs, targets)

    def get_metrics(self, is_train=False):
        # defines which metrics to use in each phase of training
        return {"MulticlassAccuracy": self.train_accuracy} if is_train else {"MulticlassAccuracy": self.val_accuracy}


# --- end of snippet -----------------------------------------------------------------------------------


def numpy_accuracy(network: torch.nn.Module, loader: DataLoader) -> float:
    inputs, targets = loader.dataset.tensors  # type: ignore[attr-defined]
    with torch.no_grad():
        logits = network.eval()(inputs).numpy()
    network.train()
    return float((logits.argmax(axis=1) == targets.numpy()).mean())


def test_the_validation_loop_the_page_describes_is_the_trainers() -> None:
    from composer_swa import Trainer

    torch.manual_seed(0)
    model = ComposerClassifier()
    val_dataloader = images(20, seed=1)  # 8 + 8 + 4
    recorder = Recorder()
    trainer = Trainer(model, images(24, seed=0), "2ep", eval_dataloader=val_dataloader, loggers=[recorder], progress_bar=False)
    trainer.fit()
    values = trainer.eval()

    # --- Composer's snippet: "the validation loop does something like this"
    metrics = model.get_metrics(is_train=False)

    model.eval()  # (the Trainer does this: "No need to set model.eval() or torch.no_grad()")
    with torch.no_grad():
        for batch in val_dataloader:
            outputs = model.eval_forward(batch, None)  # (the page's eval_forward has no default for outputs)
            for m in metrics.values():
                model.update_metric(batch, outputs, m)

    for metric in metrics.values():
        metric.compute()
    # --- end of snippet
    model.train()

    assert values == {"eval/MulticlassAccuracy": float(metrics["MulticlassAccuracy"].compute())}
    assert values["eval/MulticlassAccuracy"] == pytest.approx(numpy_accuracy(model.model, val_dataloader))
    assert recorder.logged[-1] == values  # "The trainer automatically logs the results of the metrics"
    assert trainer.state.eval_metrics["eval"]["MulticlassAccuracy"] is not model.val_accuracy  # the Trainer's copy


def test_multiple_metrics_in_a_metric_collection() -> None:
    from composer_swa import Trainer
    from composer_swa.metrics import CrossEntropy

    class WithCollections(ComposerClassifier):
        def __init__(self) -> None:
            super().__init__()
            self.train_loss, self.val_loss = CrossEntropy(), CrossEntropy()
            model = self
            # --- Composer's snippet: "Multiple Metrics"
            from torchmetrics.collections import MetricCollection

            model.train_metrics = MetricCollection([self.train_loss, self.train_accuracy])
            model.eval_metrics = MetricCollection([self.val_loss, self.val_accuracy])
            # --- end of snippet

        def get_metrics(self, is_train: bool = False) -> dict[str, torchmetrics.Metric]:
            return dict((self.train_metrics if is_train else self.eval_metrics).items())

    torch.manual_seed(0)
    model = WithCollections()
    val_dataloader = images(16, seed=1)
    trainer = Trainer(model, images(24, seed=0), "1ep", eval_dataloader=val_dataloader, loggers=[], progress_bar=False)
    trainer.fit()

    values = trainer.eval()

    inputs, targets = val_dataloader.dataset.tensors  # type: ignore[attr-defined]
    model.eval()
    with torch.no_grad():
        batch_losses = [float(F.cross_entropy(model.model(x), y)) for x, y in zip(inputs.split(8), targets.split(8))]
    model.train()
    accuracy = numpy_accuracy(model.model, val_dataloader)
    assert values == pytest.approx({"eval/CrossEntropy": float(np.mean(batch_losses)), "eval/MulticlassAccuracy": accuracy})


def test_bert_with_transformers() -> None:
    # --- Composer's snippet: "BERT Example with 🤗 Transformers" (from_pretrained -> from_config, no download)
    from torchmetrics.classification import MulticlassAccuracy
    from transformers import AutoModelForSequenceClassification, BertConfig

    from composer_swa.metrics import LanguageCrossEntropy
    from composer_swa.models import HuggingFaceModel

    # huggingface model
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(
        BertConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32, vocab_size=64,
                   max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                   num_labels=2),  # from_pretrained's num_labels=2 goes into the config here
    )  # fmt: skip

    # list of torchmetrics
    metrics = [LanguageCrossEntropy(), MulticlassAccuracy(num_classes=2, average="micro")]

    # composer model, ready to be passed to our trainer
    composer_model = HuggingFaceModel(model, metrics=metrics)
    # --- end of snippet

    from composer_swa import Trainer

    generator = torch.Generator().manual_seed(0)
    ids, labels = torch.randint(1, 64, (12, 6), generator=generator), torch.randint(0, 2, (12,), generator=generator)
    data = [{"input_ids": ids[s : s + 4], "labels": labels[s : s + 4]} for s in (0, 4, 8)]
    trainer = Trainer(composer_model, data, "2ep", eval_dataloader=data, loggers=[], progress_bar=False)
    trainer.fit()

    values = trainer.eval()

    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits.double()
    losses = F.cross_entropy(logits, labels, reduction="none").numpy()
    assert trainer.state.timestamp.batch.value == 6
    assert values == pytest.approx(
        {
            "eval/LanguageCrossEntropy": float(losses.mean()),  # per sample: one label each
            "eval/MulticlassAccuracy": float((logits.numpy().argmax(1) == labels.numpy()).mean()),
        }
    )
