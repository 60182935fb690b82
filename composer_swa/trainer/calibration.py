"""How good predicted probabilities are: negative log-likelihood and expected calibration error (no Trainer needed).

- **NLL**: the mean of ``-log p(y_i | x_i)`` over the samples, in nats.
- **ECE** (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017; the measure of Maddox et
  al. 2019): the samples are put into ``n_bins`` equal-width bins by their confidence (the largest
  class probability; bin ``m`` holds confidences in ``((m−1)/M, m/M]``), and
  ``ECE = Σ_m (|B_m| / N) · |accuracy(B_m) − confidence(B_m)|``. ``torchmetrics``'
  ``MulticlassCalibrationError(n_bins=15, norm="l1")`` computes the same up to confidences that fall
  exactly on a bin edge.

Under torch.distributed each process passes its share of the predictions and the sums are combined,
so every process gets the metrics of the whole set.
"""

from __future__ import annotations

import torch

from composer_swa.distributed.process_group import is_distributed, reduce_sum

__all__ = ["calibration_metrics"]


def calibration_metrics(
    probabilities: torch.Tensor, targets: torch.Tensor, n_bins: int = 15, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """``{"nll", "ece", "accuracy"}`` of class probabilities ``(N, C)`` for integer targets ``(N,)``.

    Args:
        probabilities: Each row a distribution over the classes (e.g. a softmax, or an ensemble's mean of them).
        targets: The true class of each row.
        n_bins: Equal-width confidence bins of the ECE (15, as Guo et al. and the SWAG paper).
        device: Where the sums are combined across processes under torch.distributed (NCCL: the GPU).

    Example:
        >>> probabilities = torch.tensor([[0.9, 0.1], [0.62, 0.38], [0.3, 0.7]])
        >>> metrics = calibration_metrics(probabilities, torch.tensor([0, 1, 1]))
        >>> round(metrics["accuracy"], 4), round(metrics["nll"], 4)  # -(ln 0.9 + ln 0.38 + ln 0.7) / 3
        (0.6667, 0.4765)
        >>> round(metrics["ece"], 4)  # one sample per bin: (|0.9 - 1| + |0.62 - 0| + |0.7 - 1|) / 3
        0.34
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if probabilities.dim() != 2 or targets.shape != probabilities.shape[:1]:
        raise ValueError(
            "calibration needs probabilities (N, C) and targets (N,), "
            f"got {tuple(probabilities.shape)} and {tuple(targets.shape)}"
        )
    probabilities = probabilities.detach().to(torch.float64)
    targets = targets.detach().to(probabilities.device, torch.long)
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == targets).to(torch.float64)
    true_class = probabilities.gather(1, targets[:, None]).squeeze(1)
    nll_sum = -true_class.clamp_min(torch.finfo(torch.float64).tiny).log().sum()
    # Bin m (0-based) holds confidences in (m/M, (m+1)/M]; a confidence of 0 cannot occur for a distribution.
    bins = (confidence * n_bins).ceil().long().clamp(1, n_bins) - 1
    counts = torch.zeros(n_bins, dtype=torch.float64, device=probabilities.device).index_add_(
        0, bins, torch.ones_like(confidence)
    )
    confidence_sums = torch.zeros_like(counts).index_add_(0, bins, confidence)
    correct_sums = torch.zeros_like(counts).index_add_(0, bins, correct)
    totals = torch.cat(
        [torch.stack([torch.tensor(float(len(targets)), dtype=torch.float64), nll_sum.cpu()]).to(counts.device), counts]
    )
    totals = torch.cat([totals, confidence_sums, correct_sums])
    if is_distributed():
        totals = reduce_sum(totals.to(device)).cpu()
    samples, nll_sum = totals[0], totals[1]
    counts, confidence_sums, correct_sums = totals[2:].view(3, n_bins)
    if samples == 0:
        raise ValueError("calibration needs at least one prediction, got none")
    ece = (confidence_sums - correct_sums).abs().sum() / samples  # |B_m|·|acc_m − conf_m| = |Σ conf − Σ correct|
    return {"nll": float(nll_sum / samples), "ece": float(ece), "accuracy": float(correct_sums.sum() / samples)}
