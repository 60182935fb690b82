"""Stochastic Weight Averaging: an equal-weight running average of the weights late in training."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from composer_swa.algorithms.arguments import (
    check_count,
    check_cyclic_lr,
    check_flag,
    check_one_lr_per_group,
    check_paper_schedule,
    check_resolved_window,
    check_schedule_swa_lr,
    check_swa_lr,
    check_swa_window,
    check_window_updates,
    update_schedule,
)
from composer_swa.algorithms.averaging_algorithm import AveragingAlgorithm
from composer_swa.algorithms.lr_schedules import anneal_progress, annealed_lrs, cyclic_lr, normalize_anneal_strategy, set_lrs
from composer_swa.averaging.bn import batch_norm_layers, recompute_batch_norm
from composer_swa.events import Event, Resource, Tenure
from composer_swa.time import Time

if TYPE_CHECKING:
    from composer_swa.events.algorithm import Action
    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["SWA"]


class SWA(AveragingAlgorithm):
    """Stochastic Weight Averaging (Izmailov et al., "Averaging Weights Leads to Wider Optima and
    Better Generalization", UAI 2018, https://arxiv.org/abs/1803.05407).

    From ``swa_start`` to ``swa_end`` the weights are sampled every ``update_interval`` into an
    equal-weight running average ``avg += (w - avg) / (n + 1)``, kept in fp32. At ``swa_end`` the live
    weights are replaced by the average and batch-norm statistics are recomputed with one
    sample-weighted pass over the training data. With ``swa_end="1.0dur"`` (the default) the final
    model is exactly the average with fresh statistics; with an earlier ``swa_end``, training
    continues from the average.

    Snapshots: with ``s``, ``e`` the batch counts ``swa_start`` and ``swa_end`` resolve to and ``k``
    the interval in batches, the average is updated at ``BATCH_END`` after completed batch counts
    ``s, s+k, s+2k, ... <= e`` (``s = 0`` snapshots the initial weights at ``FIT_START``). With an
    epoch interval, updates happen at ``EPOCH_END`` on the epoch boundaries from the first one at or
    after ``s``, every ``k`` batches: the grid of :class:`~composer_swa.Schedule`, as EMA's and LAWA's.
    At ``swa_end`` SWA acts after any algorithm that snapshots the weights, whatever the list order.

    Learning rate: by default SWA leaves it to the user's schedulers. ``schedule_swa_lr=True`` makes
    SWA own it from ``swa_start``: it anneals from the LR in effect then to ``swa_lr`` over
    ``anneal_steps`` optimizer steps, then holds ``swa_lr`` (``swa_lr=None`` holds the starting LR).
    ``schedule_swa_lr="paper"`` is the paper's schedule (their code's ``learning_rate_schedule``), from
    batch 0: with ``t = batch / swa_start`` (batches done, over swa_start's batch count) each param
    group keeps its initial LR while ``t <= 0.5``, decays linearly to ``swa_lr`` until ``t = 0.9``, then
    holds ``swa_lr`` through the window (it needs ``swa_lr``; ``anneal_*`` are unused).
    ``cyclic_lr=(high, low)`` is the paper's cyclic schedule instead: within each update interval the
    LR falls linearly from ``high`` to ``low`` and the average is taken at the low point. While SWA
    owns the LR the user's schedulers do not step. When training goes on past ``swa_end``, SWA
    restores there the LR it found and the schedulers resume where they paused; with ``swa_end`` at
    the end of the run the LR stays at the value the last batch used.

    Resuming: the checkpoint stores these arguments. A resumed run may change any with a warning
    naming each change, except (a ValueError): ``swa_start`` and ``update_interval`` once the
    average holds a snapshot (taken on the old grid); ``schedule_swa_lr`` and ``cyclic_lr`` while SWA's
    LR schedule or averaging is under way; ``swa_end`` once the average was swapped in.

    Memory: the average is one fp32 copy of the parameters and floating buffers, on the model's device
    (``offload=True``: on the CPU); integer buffers such as ``num_batches_tracked`` are copied, never
    averaged; float buffers are averaged unless ``bn_update`` recomputes them. At ``swa_end`` the live
    weights it replaces stay in ``training_weights`` (one more copy, in their dtype, as EMA and LAWA
    keep theirs), in checkpoints from then on, exported as ``SWA-training.safetensors``.

    Args:
        swa_start: When averaging starts, any Time (``"0.7dur"``, ``"30ep"``, ``"2000ba"``).
        swa_end: When the average replaces the live weights; default ``"1.0dur"``, the end of the run.
        update_interval: Time between snapshots, in ``ba`` or ``ep``.
        schedule_swa_lr: ``True``: SWA owns the LR in the window (anneal to ``swa_lr``); ``"paper"``: for the whole run.
        anneal_strategy: ``"linear"``/``"lin"`` or ``"cosine"``/``"cos"``.
        anneal_steps: Optimizer steps of the anneal; 0 jumps to ``swa_lr``.
        swa_lr: The LR to anneal to; a list gives one per param group (every optimizer must have that
            many groups, checked at FIT_START); ``None`` holds the LR in effect at ``swa_start``.
        bn_update: Recompute batch-norm statistics after the swap (skipped for models without them).
        cyclic_lr: ``(high, low)`` for the paper's cyclic schedule, or ``None``.
        eval_with_average: Evaluate with the averaged weights during the window.
        offload: Keep the average on the CPU.
        use_buffers: Average floating buffers too; ``False``: the average holds the live buffers as of its last
            update (then recomputed by ``bn_update``), as torch's ``AveragedModel(use_buffers=False)``.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from composer_swa import Trainer
        >>> data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), batch_size=16)
        >>> swa = SWA(swa_start="0.5dur", update_interval="1ba")
        >>> trainer = Trainer(torch.nn.Linear(4, 2), data, max_duration="4ep", algorithms=[swa], progress_bar=False, loggers=[])
        >>> trainer.fit()
        >>> swa.n_averaged  # snapshots after batches 8, 9, ..., 16
        9
    """

    events: ClassVar[frozenset[Event]] = frozenset(
        {Event.FIT_START, Event.BATCH_START, Event.BATCH_END, Event.EPOCH_END, Event.EVAL_START, Event.EVAL_END, Event.FIT_END}
    )
    may_own: ClassVar[frozenset[Resource]] = frozenset(
        {Resource.LR, Resource.FINAL_WEIGHTS, Resource.EVAL_WEIGHTS, Resource.WINDOW_AVERAGE}
    )
    replaces_weights_at: ClassVar[frozenset[Event]] = frozenset({Event.BATCH_END, Event.EPOCH_END})  # at swa_end
    stored_arguments: ClassVar[tuple[str, ...]] = (
        "swa_start", "swa_end", "update_interval", "schedule_swa_lr", "anneal_strategy", "anneal_steps",
        "swa_lr", "bn_update", "cyclic_lr", "eval_with_average", "offload", "use_buffers",
    )  # fmt: skip

    def __init__(
        self,
        swa_start: Time | str = "0.7dur",
        swa_end: Time | str = "1.0dur",
        update_interval: Time | str = "1ep",
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
        self.swa_start, self.swa_end = check_swa_window(swa_start, swa_end)
        self.anneal_strategy = normalize_anneal_strategy(anneal_strategy)
        self.anneal_steps = check_count(
            anneal_steps, "anneal_steps", "it counts optimizer steps, an int as in Composer (not a Time)"
        )
        self.swa_lr = check_swa_lr(swa_lr)
        self.cyclic_lr = check_cyclic_lr(cyclic_lr)
        self.schedule_swa_lr = check_schedule_swa_lr(schedule_swa_lr, self.swa_lr)
        if self.cyclic_lr is not None and self.schedule_swa_lr:
            raise ValueError("cyclic_lr and schedule_swa_lr=True both set the LR in the window; choose one")
        self.bn_update = check_flag(bn_update, "bn_update")
        schedule = update_schedule(update_interval, start=self.swa_start, end=self.swa_end)
        flags = (check_flag(eval_with_average, "eval_with_average"), check_flag(offload, "offload"))
        super().__init__(schedule, *flags, use_buffers=check_flag(use_buffers, "use_buffers"))

        self.n_averaged = 0
        self._start_lrs: list[list[float]] = []
        self._window = (0, 0)  # swa_start and swa_end in batches, resolved at FIT_START
        self._swap_at_epoch_end = False  # an epoch interval whose swa_end falls on an epoch boundary

    @property
    def _owns_lr(self) -> bool:
        return bool(self.schedule_swa_lr) or self.cyclic_lr is not None

    @property
    def _lr_from(self) -> int:  # the first batch count SWA sets the LR at: 0 under the paper's schedule
        return 0 if self.schedule_swa_lr == "paper" else self._first_update

    def owned_resources(self, state: State) -> Mapping[Resource, Tenure]:
        (start, end) = self._window
        owned = {Resource.WINDOW_AVERAGE: Tenure(start, end, "swa_start", "swa_end")}
        if self._owns_lr:
            paper = self.schedule_swa_lr == "paper"
            owned[Resource.LR] = Tenure(0 if paper else start, end, "" if paper else "swa_start", "swa_end")
        if end == state.max_batches:
            owned[Resource.FINAL_WEIGHTS] = Tenure()
        if self.eval_with_average:
            owned[Resource.EVAL_WEIGHTS] = Tenure()
        return owned

    def plan(self, event: Event, state: State) -> Sequence[Action]:
        if event is Event.BATCH_END or event is Event.EPOCH_END:
            if self.finished:
                return ()
            at_epoch_end = event is Event.EPOCH_END
            update = self._updates.fires(state.timestamp, at_epoch_end)
            swap = state.timestamp.batch_count == self._window[1] and at_epoch_end is self._swap_at_epoch_end
            actions: tuple[Action, ...] = (self._update,) if update else ()
            return (*actions, self._swap_in_average) if swap else actions
        if event is Event.BATCH_START:
            live = self._owns_lr and not self.finished and self._lr_from <= state.timestamp.batch_count < self._window[1]
            return (self._set_window_lr,) if live else ()
        if event is Event.FIT_START:
            return (self._start,)
        if event is Event.FIT_END:
            return (self._warn_if_stopped_early,)
        return self._eval_plan(event)

    def _start(self, state: State, logger: Logger) -> None:
        self._window = check_resolved_window(self.swa_start, self.swa_end, state, swapped_in=self.finished)
        self._resolve_schedule(state)
        if self._updates.at_epoch_end:
            assert self._batches_per_epoch is not None  # resolving the window and an 'ep' interval already required it
            self._swap_at_epoch_end = self._window[1] % self._batches_per_epoch == 0
        check_window_updates(self, state.batches_per_epoch, warn_single=self.n_averaged == 0)
        check_one_lr_per_group(self.swa_lr if self.schedule_swa_lr else None, state.optimizers, "swa_lr")
        self._prepare_average(state)
        count = state.timestamp.batch_count
        recorded_lrs = bool(self._start_lrs) or self.finished
        check_paper_schedule(self.schedule_swa_lr, self.swa_start, self._window[0], count, recorded_lrs)
        if self._owns_lr and self._lr_from <= count < self._window[1] and not self.finished:
            state.lr_owner = self  # resumed inside the window
        if count == 0 and self._first_update == 0:
            self._update(state, logger)  # a window from batch 0 starts with the initial weights

    def _set_window_lr(self, state: State, logger: Logger) -> None:
        count = state.timestamp.batch_count
        if count == self._lr_from:  # the first step SWA schedules: remember the LR in effect
            self._start_lrs = [[group["lr"] for group in opt.param_groups] for opt in state.optimizers]
            state.lr_owner = self
        if self.cyclic_lr is not None:
            high, low = self.cyclic_lr
            cycle = self._update_step
            lr = cyclic_lr(high, low, step_in_cycle=(count - self._first_update) % cycle + 1, cycle_length=cycle)
            set_lrs(state.optimizers, [[lr] * len(lrs) for lrs in self._start_lrs])
            return
        progress = anneal_progress(self.schedule_swa_lr, count, self._first_update, self._window[0], self.anneal_steps)
        set_lrs(state.optimizers, annealed_lrs(self._start_lrs, self.swa_lr, progress, self.anneal_strategy))

    def _update(self, state: State, logger: Logger) -> None:
        assert self.average is not None
        if not self._accepts_update(state):
            return
        if self.n_averaged == 0:
            self.average.copy_from_model()
        else:
            self.average.interpolate(1.0 / (self.n_averaged + 1))
        self.n_averaged += 1

    def _swap_in_average(self, state: State, logger: Logger) -> None:
        self._hand_back_lr(state)
        if self.n_averaged == 0:  # should_update refused every update of the window
            warnings.warn("SWA: should_update accepted no update in the window; the model keeps the live weights", stacklevel=3)
            return
        self._replace_model_weights(state)  # the live weights stay in training_weights
        message = f"{self.name}: the model now holds the average of {self.n_averaged} snapshots"
        if self.bn_update and batch_norm_layers(state.model):
            samples = recompute_batch_norm(state.model, state.train_dataloader, state.run_forward)
            message += f"; batch-norm statistics recomputed over {samples} samples"
        logger.log_message(message, step=state.timestamp.batch_count)

    def _hand_back_lr(self, state: State) -> None:
        if state.lr_owner is self:
            # Only a run that trains past swa_end needs the paused schedule back; at the end of the run the
            # last logged LR stays the one the last batch used.
            if self._window[1] < state.max_batches:
                set_lrs(state.optimizers, self._start_lrs)
            state.lr_owner = None

    def _warn_if_stopped_early(self, state: State, logger: Logger) -> None:
        count, end = state.timestamp.batch_count, self._window[1]
        if not self.finished and count < end:
            warnings.warn(
                f"SWA: training stopped at batch {count}, before swa_end (batch {end}); the model holds the "
                f"live weights and the average of {self.n_averaged} snapshots is in SWA.average",
                stacklevel=3,
            )

    @property
    def _has_average(self) -> bool:
        return self.n_averaged > 0

    def locked_arguments(self) -> dict[str, str]:
        locked: dict[str, str] = {}
        if self.n_averaged > 0:
            grid = f"the saved average holds {self.n_averaged} snapshots taken on the checkpoint's grid"
            locked.update(swa_start=grid, update_interval=grid)
        if (self.n_averaged > 0 or self._start_lrs) and not self.finished:
            owner = "the LR schedule or averaging is under way, and SWA recorded (or did not) the LR to restore at swa_end"
            locked.update(schedule_swa_lr=owner, cyclic_lr=owner)
        if self.finished:
            locked["swa_end"] = "the average already replaced the weights at the checkpoint's swa_end"
        return locked

    def summary(self) -> dict[str, Any]:
        return {
            "window_batches": list(self._window),
            "first_update_batch": self._first_update,
            "n_averaged": self.n_averaged,
            "swapped_in": self.finished,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "n_averaged": self.n_averaged,
            "start_lrs": self._start_lrs,
            "average": self._average_state(),
            "training_weights": self._training_weights_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.n_averaged = int(state["n_averaged"])
        self._start_lrs = [list(lrs) for lrs in state["start_lrs"]]
        self._load_average_state(state["average"])
        self.training_weights = state.get("training_weights")  # absent from checkpoints written before it was kept
