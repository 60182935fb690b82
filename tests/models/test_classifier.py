"""ComposerClassifier: Composer's defaults (soft cross-entropy, MulticlassAccuracy, CrossEntropy), trained on small data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from composer_swa import Trainer
from composer_swa.loss import soft_cross_entropy
from composer_swa.models import ComposerClassifier
from tests.helpers import quiet


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_defaults_are_composers() -> None:
    model = ComposerClassifier(torch.nn.Linear(4, 5), num_classes=5)
    train, evaluation = model.get_metrics(is_train=True), model.get_metrics(is_train=False)

    assert list(train) == ["MulticlassAccuracy"] and sorted(evaluation) == ["CrossEntropy", "MulticlassAccuracy"]
    assert train["MulticlassAccuracy"].num_classes == 5 and train["MulticlassAccuracy"].average == "micro"
    assert model._loss_fn is soft_cross_entropy


def test_the_number_of_classes_comes_from_the_module_or_the_metrics() -> None:
    class Net(torch.nn.Linear):
        num_classes = 3

    with pytest.warns(UserWarning, match="num_classes=7 differs from module.num_classes=3"):
        assert ComposerClassifier(Net(4, 3), num_classes=7).num_classes == 3
    with pytest.raises(ValueError, match="ComposerClassifier needs the number of classes"):
        ComposerClassifier(torch.nn.Linear(4, 3))
    accuracy = MulticlassAccuracy(num_classes=3)
    given = ComposerClassifier(torch.nn.Linear(4, 3), train_metrics=accuracy, val_metrics=accuracy)
    assert given.get_metrics(is_train=False) == {"MulticlassAccuracy": accuracy}


def test_soft_cross_entropy_takes_indices_and_probabilities() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=generator)
    targets = torch.randint(0, 4, (6,), generator=generator)
    smoothed = torch.full((6, 4), 0.1 / 3).scatter_(1, targets[:, None], 0.9)
    log_probs = _log_softmax(logits.double().numpy())

    assert float(soft_cross_entropy(logits, targets)) == pytest.approx(-log_probs[np.arange(6), targets.numpy()].mean())
    assert float(soft_cross_entropy(logits, smoothed)) == pytest.approx(-(smoothed.double().numpy() * log_probs).sum(1).mean())
    with pytest.raises(ValueError, match=r"target of shape \(6, 3\) fits neither input \(6, 4\)"):
        soft_cross_entropy(logits, torch.zeros(6, 3))


def test_a_classifier_learns_separable_classes_and_reports_numpys_metrics() -> None:
    generator = torch.Generator().manual_seed(0)
    centers = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    targets = torch.randint(0, 3, (120,), generator=generator)
    inputs = centers[targets] + 0.5 * torch.randn(120, 2, generator=generator)
    train = DataLoader(TensorDataset(inputs[:80], targets[:80]), batch_size=16, shuffle=True, generator=generator)
    evaluation = DataLoader(TensorDataset(inputs[80:], targets[80:]), batch_size=16)  # 16 + 16 + 8
    torch.manual_seed(0)
    model = ComposerClassifier(torch.nn.Linear(2, 3), num_classes=3)
    trainer = Trainer(model, train, "10ep", eval_dataloader=evaluation, **quiet())
    trainer.fit()

    values = trainer.eval()

    with torch.no_grad():
        logits = model.module(inputs[80:]).double().numpy()
    labels = targets[80:].numpy()
    log_probs = _log_softmax(logits)
    batch_means = [-log_probs[s : s + 16][np.arange(len(labels[s : s + 16])), labels[s : s + 16]].mean() for s in (0, 16, 32)]
    assert values == pytest.approx(
        {"eval/MulticlassAccuracy": float((logits.argmax(1) == labels).mean()), "eval/CrossEntropy": float(np.mean(batch_means))},
        rel=1e-5,
    )
    assert values["eval/MulticlassAccuracy"] > 0.9  # the classes are separable: training worked
