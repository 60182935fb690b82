"""SWA-Gaussian: SWA's run, plus the second moment and the last K deviations, for a Gaussian over the weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from composer_swa.algorithms.arguments import is_number
from composer_swa.algorithms.swa import SWA
from composer_swa.averaging.swag_moments import SWAGMoments, diagonal_variance
from composer_swa.averaging.swag_posterior import SWAGPosterior
from composer_swa.time import Time

if TYPE_CHECKING:
    from composer_swa.averaging.model_average import ModelAverage
    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["SWAG"]


class SWAG(SWA):
    """SWA-Gaussian (Maddox, Garipov, Izmailov, Vetrov, Wilson, "A Simple Baseline for Bayesian Uncertainty in
    Deep Learning", NeurIPS 2019, https://arxiv.org/abs/1902.02476).

    SWA with the same window, schedule, LR and batch-norm semantics (it *is* :class:`~composer_swa.SWA`:
    every argument of SWA means the same here, and at ``swa_end`` the model holds the SWA mean with fresh
    batch-norm statistics, exactly as with SWA). Each snapshot also updates the fp32 second moment of the
    parameters and writes their deviation from the mean into a ring buffer of ``max_rank`` columns
    (:mod:`composer_swa.averaging.swag_moments`). Together they define the Gaussian
    ``N(θ_SWA, scale · (Σ_diag + D̂D̂ᵀ/(K − 1)))`` (:mod:`composer_swa.averaging.swag_posterior`):
    :meth:`sample` draws weights into the model, :meth:`posterior` returns the distribution, and
    :func:`~composer_swa.averaging.bayesian.bayesian_predict` averages the softmax of many samples, each
    with its own batch-norm pass. Use SWAG *instead of* SWA: a run with both is refused at FIT_START.

    Memory: ``2 + max_rank`` fp32 copies of the parameters (the mean, the second moment, ``K``
    deviations; the mean also covers floating buffers), on the model's device or, with ``offload``, on the
    CPU; plus SWA's copy of the replaced live weights after ``swa_end``. Each update costs SWA's lerp plus
    one squared lerp and one column copy. Under DDP the weights are identical on every process and
    nothing is communicated; under FSDP2 each process keeps its shards of the mean, the moments and the
    deviations.

    Checkpoints hold the moments and the deviations (oldest first), so a resumed run continues exactly.
    The run's export writes ``SWAG-posterior.safetensors`` (``mean.*``, ``variance.*``,
    ``deviations.*``), which :meth:`SWAGPosterior.from_file
    <composer_swa.averaging.swag_posterior.SWAGPosterior.from_file>` reads back without a Trainer.

    Args:
        swa_start: As :class:`~composer_swa.SWA`.
        swa_end: As SWA.
        update_interval: As SWA.
        max_rank: ``K``, the deviation columns kept (the paper's 20). Fixed once a snapshot is taken.
        num_samples: Samples of the ensemble ``swa-train``'s final table evaluates (the paper's 30).
        scale: The covariance scale of those samples (0.5: the paper's ½).
        bn_batches: Training batches of each sample's batch-norm pass in that table (``None``: one epoch).
        schedule_swa_lr: As SWA.
        anneal_strategy: As SWA.
        anneal_steps: As SWA.
        swa_lr: As SWA.
        bn_update: As SWA.
        cyclic_lr: As SWA.
        eval_with_average: As SWA (evaluates the mean).
        offload: Keep the mean, the moments and the deviations on the CPU.
        use_buffers: As SWA.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from composer_swa import Trainer
        >>> data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), batch_size=16)
        >>> swag = SWAG(swa_start="0.5dur", update_interval="1ba", max_rank=3)
        >>> trainer = Trainer(torch.nn.Linear(4, 2), data, max_duration="4ep", algorithms=[swag], progress_bar=False, loggers=[])
        >>> trainer.fit()
        >>> swag.n_averaged, swag.posterior().rank
        (9, 3)
        >>> swag.sample(generator=torch.Generator().manual_seed(0))  # the model now holds one draw
    """

    stored_arguments: ClassVar[tuple[str, ...]] = (*SWA.stored_arguments, "max_rank", "num_samples", "scale", "bn_batches")

    def __init__(
        self,
        swa_start: Time | str = "0.7dur",
        swa_end: Time | str = "1.0dur",
        update_interval: Time | str = "1ep",
        max_rank: int = 20,
        num_samples: int = 30,
        scale: float = 0.5,
        bn_batches: int | None = None,
        schedule_swa_lr: bool | str = False,
        anneal_strategy: str = "linear",
        anneal_steps: int = 10,
        swa_lr: float | Sequence[float] | None = None,
        bn_update: bool = True,
        cyclic_lr: tuple[float, float] | None = None,
        eval_with_average: bool = False,
        offload: bool = False,
        use_buffers: bool = True,
    ) -> None:
        super().__init__(
            swa_start, swa_end, update_interval, schedule_swa_lr, anneal_strategy, anneal_steps, swa_lr, bn_update,
            cyclic_lr, eval_with_average, offload, use_buffers,
        )  # fmt: skip
        self.max_rank = _positive(max_rank, "max_rank")
        self.num_samples = _positive(num_samples, "num_samples")
        if not is_number(scale) or not scale >= 0:
            raise ValueError(f"scale must be a number >= 0, got {scale!r}")
        self.scale = float(scale)
        self.bn_batches = None if bn_batches is None else _positive(bn_batches, "bn_batches")
        self.moments: SWAGMoments | None = None
        self._model: torch.nn.Module | None = None
        self._pending_moments: dict[str, Any] | None = None

    def _prepare_average(self, state: State) -> ModelAverage:
        average = super()._prepare_average(state)
        if self.moments is None:
            self.moments = SWAGMoments(state.model, average, self.max_rank, device="cpu" if self.offload else None)
            self._model = state.model
        if self._pending_moments is not None:
            self.moments.load_state_dict(self._pending_moments)
            self._pending_moments = None
        return average

    def _update(self, state: State, logger: Logger) -> None:
        super()._update(state, logger)  # the mean first: the deviation is from the mean including this snapshot
        assert self.moments is not None
        self.moments.update(1.0 / self.n_averaged)

    def posterior(self, gather: bool = False) -> SWAGPosterior:
        """The Gaussian over the weights now: copies of the mean, the variance and the deviations.

        Args:
            gather: Under FSDP2, whole tensors (a collective: every process must call it) instead of this
                process's shards. Either samples the same model for one seed.

        Raises:
            ValueError: Before the first snapshot.
        """
        if self.moments is None or self.average is None or not self._has_average:
            raise ValueError("SWAG has no snapshot yet: its posterior exists from the first update in the window")
        mean = self.average.full_state_dict() if gather else self.average.state_dict()
        if gather:
            moments = self.moments.state_dict()
            variance = {name: diagonal_variance(moments["second_moment"][name], mean[name]) for name in self.moments.names}
            deviations, sharded_like = moments["deviations"], {}
        else:
            variance, deviations, sharded_like = self.moments.variance(), self.moments.deviations(), self.moments.sharded_like
        return SWAGPosterior({n: t.detach().clone() for n, t in mean.items()}, variance, deviations, dict(sharded_like))

    def sample(self, scale: float = 0.5, generator: torch.Generator | None = None, diagonal_only: bool = False) -> None:
        """Writes one draw of the weights into the model this SWAG trained (see :meth:`SWAGPosterior.sample
        <composer_swa.averaging.swag_posterior.SWAGPosterior.sample>` for the formula and ``scale``).

        Batch-norm statistics are left as they are: recompute them for the sample
        (:func:`~composer_swa.averaging.recompute_batch_norm`), or predict with
        :func:`~composer_swa.averaging.bayesian.bayesian_predict`, which does.
        """
        if self._model is None:
            raise ValueError("SWAG.sample needs a trained SWAG: it samples into the model of its run")
        self.posterior().sample_into(self._model, scale, generator, diagonal_only)

    def exported_weights(self) -> dict[str, dict[str, torch.Tensor] | None]:
        """SWA's ``average`` and ``training`` weights, and the ``posterior``'s tensors (``mean.*``, ``variance.*``,
        ``deviations.*``; written as ``SWAG-posterior.safetensors``)."""
        posterior = self.posterior(gather=True).tensors() if self._has_average and self.moments is not None else None
        return {**super().exported_weights(), "posterior": posterior}

    def locked_arguments(self) -> dict[str, str]:
        locked = super().locked_arguments()
        if self.n_averaged > 0:
            locked["max_rank"] = (
                f"the saved deviations fill a ring buffer of the checkpoint's max_rank after {self.n_averaged} snapshots"
            )
        return locked

    def summary(self) -> dict[str, Any]:
        rank = self.moments.filled if self.moments is not None else 0
        return {**super().summary(), "max_rank": self.max_rank, "deviation_columns": rank}

    def state_dict(self) -> dict[str, Any]:
        moments = self.moments.state_dict() if self.moments is not None and self._has_average else self._pending_moments
        return {**super().state_dict(), "moments": moments}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state["moments"]
        if saved is not None and self.moments is not None:
            self.moments.load_state_dict(saved)
        else:
            self._pending_moments = saved  # applied once the moments exist, at FIT_START


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
