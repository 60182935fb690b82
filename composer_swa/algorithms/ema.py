"""Exponential moving average of the weights, evaluated on and kept at the end of training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from composer_swa.algorithms.arguments import check_flag, check_min_decay, check_positive, is_number, update_schedule
from composer_swa.algorithms.averaging_algorithm import GridAveragingAlgorithm
from composer_swa.averaging.model_average import ModelAverage, compute_ema
from composer_swa.time import Time, TimeUnit, as_time

if TYPE_CHECKING:
    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["EMA", "compute_ema"]

#: ``half_life``'s default, told apart by identity from an explicit ``half_life=None`` (which needs ``smoothing``).
_DEFAULT_HALF_LIFE = "".join(["1000", "ba"])  # built at run time, so never the same object as a literal "1000ba"


class EMA(GridAveragingAlgorithm):
    """Exponential moving average of the weights (Polyak & Juditsky, "Acceleration of Stochastic
    Approximation by Averaging", 1992; the form used by Tarvainen & Valpola, "Mean teachers are better
    role models", NeurIPS 2017, https://arxiv.org/abs/1703.01780).

    Every ``update_interval`` from ``ema_start`` on, ``ema ← s·ema + (1−s)·w``: after batches
    ``ema_start``, ``ema_start + update_interval``, ... (an epoch interval: at the end of the first epoch at
    or after ``ema_start``, then every ``update_interval``; see :class:`~composer_swa.Schedule`). The
    first update copies the live weights. Give exactly one of ``half_life`` and
    ``smoothing``: with ``half_life``, ``s = 2 ** -(update_interval / half_life)``, so a weight's
    influence halves every ``half_life``. ``update_interval`` defaults to one unit of ``half_life``
    (``"1ba"`` when only ``smoothing`` is given).

    During fit, evaluation uses the EMA weights (swapped in at EVAL_START, back at EVAL_END). At
    FIT_END the model takes the EMA weights; the training weights stay in ``training_weights`` and the
    EMA in ``average``. ``replace_at_fit_end=False`` keeps the training weights in the model instead.

    Decay warm-up (as in timm's ``ModelEmaV3``): with ``warmup_gamma`` set, the ``t``-th update after
    the first copy uses ``max(min_decay, min(s, 1 - (1 + t / warmup_gamma) ** -warmup_power))``, so early
    weights, far from where training ends, fade quickly. timm's ``ModelEmaV3(decay=s, use_warmup=True,
    update_after_step=N)`` stepped after every optimizer step is ``EMA(smoothing=s, warmup_gamma=...,
    ema_start=f"{N + 1}ba")``: timm copies the weights up to step ``N + 1``, as our first update does.

    Resuming: the checkpoint stores these arguments. Once the EMA holds an average, a resumed run may
    not change the decay (``smoothing``, or ``half_life`` and ``update_interval`` in a way that
    changes it), ``ema_start``, ``update_interval``, ``warmup_gamma`` or ``warmup_power``: the saved
    average was built with the old ones (a ValueError). Any other change is a warning naming it. A
    checkpoint written before arguments were stored cannot be checked (a warning says so).

    Batch norm and memory: one fp32 copy of the parameters and floating buffers (running statistics
    are averaged like weights); integer buffers are copied. ``offload=True`` keeps it on the CPU.

    Args:
        half_life: Time for a weight's influence to halve, in ``ba`` or ``ep``; ``"1000ba"`` when
            neither ``half_life`` nor ``smoothing`` is given. ``half_life=None`` needs ``smoothing``.
        smoothing: The decay ``s`` per update, in (0, 1).
        ema_start: When averaging starts.
        update_interval: Time between updates, in ``ba`` or ``ep``.
        replace_at_fit_end: Leave the EMA weights in the model at FIT_END.
        eval_with_average: Evaluate with the EMA weights during fit.
        warmup_gamma: Decay warm-up speed, or ``None`` for no warm-up.
        warmup_power: Decay warm-up exponent (timm's default 2/3).
        offload: Keep the average on the CPU.
        min_decay: The least decay the warm-up uses (timm's ``min_decay``), in [0, ``smoothing``]; needs ``warmup_gamma``.
        use_buffers: Average floating buffers too; ``False``: the EMA holds the live buffers as of its last update
            (timm's ``exclude_buffers=True``, torch's ``use_buffers=False``).

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from composer_swa import Trainer
        >>> data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), batch_size=16)
        >>> ema = EMA(half_life="10ba")
        >>> round(ema.smoothing, 4)  # 2 ** (-1 / 10)
        0.933
        >>> trainer = Trainer(torch.nn.Linear(4, 2), data, max_duration="2ep", algorithms=[ema], progress_bar=False, loggers=[])
        >>> trainer.fit()
        >>> ema.n_updates, sorted(ema.training_weights)
        (8, ['bias', 'weight'])
    """

    stored_arguments: ClassVar[tuple[str, ...]] = (
        "half_life", "smoothing", "ema_start", "update_interval", "replace_at_fit_end", "eval_with_average",
        "warmup_gamma", "warmup_power", "offload", "min_decay", "use_buffers",
    )  # fmt: skip

    def __init__(
        self,
        half_life: Time | str | None = _DEFAULT_HALF_LIFE,
        smoothing: float | None = None,
        ema_start: Time | str = "0.0dur",
        update_interval: Time | str | None = None,
        replace_at_fit_end: bool = True,
        eval_with_average: bool = True,
        warmup_gamma: float | None = None,
        warmup_power: float = 2 / 3,
        offload: bool = False,
        min_decay: float = 0.0,
        use_buffers: bool = True,
    ) -> None:
        if smoothing is not None and half_life is _DEFAULT_HALF_LIFE:
            half_life = None  # smoothing given alone
        if (half_life is None) == (smoothing is None):
            raise ValueError(
                f"give exactly one of half_life and smoothing, got half_life={half_life!r} and smoothing={smoothing!r}"
            )
        if smoothing is not None:
            if not is_number(smoothing) or not 0 < smoothing < 1:
                raise ValueError(f"smoothing must be a number in (0, 1), got {smoothing!r}")
            interval = as_time(update_interval if update_interval is not None else "1ba", "update_interval")
            self.half_life: Time | None = None
            self.smoothing = float(smoothing)
        else:
            self.half_life = as_time(half_life, "half_life")  # type: ignore[arg-type]  # not None: checked above
            if self.half_life.unit not in (TimeUnit.BATCH, TimeUnit.EPOCH) or not self.half_life.value > 0:
                raise ValueError(f"half_life must be > 0 in 'ba' or 'ep', got {str(self.half_life)!r}")
            default_interval = Time(1, self.half_life.unit)
            interval = as_time(update_interval if update_interval is not None else default_interval, "update_interval")
            if interval.unit is not self.half_life.unit:
                raise ValueError(
                    f"update_interval and half_life must use the same unit, got update_interval={str(interval)!r} "
                    f"and half_life={str(self.half_life)!r}"
                )
            self.smoothing = 2.0 ** (-(float(interval.value) / float(self.half_life.value)))
        schedule = update_schedule(interval, start=as_time(ema_start, "ema_start"))
        gamma = None if warmup_gamma is None else check_positive(warmup_gamma, "warmup_gamma", "> 0 (or None for no warm-up)")
        power = check_positive(warmup_power, "warmup_power", "> 0")
        flags = (check_flag(replace_at_fit_end, "replace_at_fit_end"), check_flag(eval_with_average, "eval_with_average"))
        super().__init__(
            schedule, *flags, offload=check_flag(offload, "offload"), use_buffers=check_flag(use_buffers, "use_buffers")
        )
        self.warmup_gamma = gamma
        self.warmup_power = power
        self.min_decay = check_min_decay(min_decay, self.smoothing, gamma)
        self.n_updates = 0

    @property
    def ema_start(self) -> Time:
        return self.schedule.start

    def smoothing_at(self, update: int) -> float:
        """The decay used by the ``update``-th interpolation after the first copy (1, 2, ...)."""
        if self.warmup_gamma is None:
            return self.smoothing
        warmed = 1.0 - (1.0 + update / self.warmup_gamma) ** -self.warmup_power
        return max(self.min_decay, min(self.smoothing, warmed))

    @property
    def ema_model(self) -> ModelAverage | None:
        """Composer's name for the EMA weights: :attr:`average` (``ema_model.state_dict()`` gives them by name)."""
        return self.average

    @property
    def _has_average(self) -> bool:
        return self.n_updates > 0

    def locked_arguments(self) -> dict[str, str]:
        if self.n_updates == 0:
            return {}
        why = f"the saved EMA of {self.n_updates} updates was built with the checkpoint's decay and grid"
        # half_life is checked through the smoothing it gives: the same decay by another spelling is only a warning.
        decay = ("smoothing", "update_interval", "ema_start", "warmup_gamma", "warmup_power", "min_decay")
        return dict.fromkeys(decay, why)

    def _snapshot(self, state: State, logger: Logger) -> None:
        assert self.average is not None
        if self.n_updates == 0:
            self.average.copy_from_model()
        else:
            self.average.interpolate(1.0 - self.smoothing_at(self.n_updates))
        self.n_updates += 1

    def _finish_message(self) -> str:
        return f"EMA: the model now holds the EMA of {self.n_updates} updates; the training weights are in EMA.training_weights"

    def summary(self) -> dict[str, Any]:
        return {
            "start_batch": self._start_batch,
            "n_updates": self.n_updates,
            "smoothing": self.smoothing,
            "swapped_in": self.finished,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "n_updates": self.n_updates, "average": self._average_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.n_updates = int(state["n_updates"])
        self._load_average_state(state["average"])
