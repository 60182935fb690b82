"""NLL and ECE against independent references: NumPy for the NLL, torchmetrics for the ECE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from composer_swa.trainer.calibration import calibration_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nll_ece_and_accuracy_match_numpy_and_torchmetrics(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    probabilities = torch.softmax(2.0 * torch.randn(500, 7, generator=generator), dim=1)
    targets = torch.randint(0, 7, (500,), generator=generator)
    metrics = calibration_metrics(probabilities, targets)
    p = probabilities.double().numpy()
    assert metrics["nll"] == pytest.approx(-np.log(p[np.arange(500), targets.numpy()]).mean(), rel=1e-12)
    assert metrics["accuracy"] == pytest.approx((p.argmax(1) == targets.numpy()).mean())
    reference = MulticlassCalibrationError(num_classes=7, n_bins=15, norm="l1")(probabilities, targets)
    assert metrics["ece"] == pytest.approx(float(reference), abs=1e-6)


def test_a_perfectly_calibrated_predictor_has_no_ece() -> None:
    # Confidence 0.75 throughout, right on 3 of every 4 samples.
    probabilities = torch.tensor([[0.75, 0.25]] * 8)
    targets = torch.tensor([0, 0, 0, 1] * 2)
    assert calibration_metrics(probabilities, targets)["ece"] == pytest.approx(0.0, abs=1e-12)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"probabilities \(N, C\) and targets \(N,\), got \(3,\) and \(3,\)"):
        calibration_metrics(torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match="n_bins must be a positive integer, got 0"):
        calibration_metrics(torch.ones(3, 2) / 2, torch.zeros(3), n_bins=0)
