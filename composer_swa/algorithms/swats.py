"""SWATS: train with Adam, then switch to SGD at a learning rate estimated from Adam's own steps."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from composer_swa.algorithms.arguments import check_positive
from composer_swa.events import AlgorithmConflictError, Event, Resource, Tenure
from composer_swa.events.algorithm import Action, PlannedAlgorithm
from composer_swa.time import Time, TimeUnit, as_time

if TYPE_CHECKING:
    from torch.utils.hooks import RemovableHandle

    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["SWATS"]

_ADAM_TYPES = (torch.optim.Adam, torch.optim.AdamW)


@dataclass
class _Estimate:
    """The running SGD learning-rate estimate for one Adam optimizer (Algorithm 1's k, γ_k, λ_k)."""

    steps: int = 0
    gamma: float = 0.0
    ema: float = 0.0  # λ_k, before bias correction
    converged: bool = False
    sgd_lrs: list[float] = field(default_factory=list)  # filled at the switch

    def corrected(self, beta2: float) -> float:
        return self.ema / (1.0 - beta2**self.steps) if self.steps else 0.0


class SWATS(PlannedAlgorithm):
    """Switching from Adam to SGD (Keskar & Socher, "Improving Generalization Performance by
    Switching from Adam to SGD", 2017, https://arxiv.org/abs/1712.07628).

    SWATS watches every Adam or AdamW optimizer of the run. After each Adam step ``p_k`` with gradient
    ``g_k`` (over all the optimizer's parameters) it computes the learning rate at which SGD's step
    ``-γ g_k`` projects onto ``p_k``: ``γ_k = (p_k·p_k) / (-p_k·g_k)``, and averages it
    ``λ_k = β2 λ_{k-1} + (1 - β2) γ_k``. Once ``k > 1`` and ``|λ_k / (1 - β2^k) - γ_k| < switch_tolerance``
    the optimizer is replaced, after that step, by ``torch.optim.SGD`` with momentum ``β1`` and
    learning rate ``(1 - β1) Λ``, ``Λ = λ_k / (1 - β2^k)``, which is the paper's SGD update
    ``v ← β1 v + g, w ← w - (1 - β1) Λ v``. ``switch_at`` forces the switch at a given time with the
    estimate so far. The paper's tolerance is 1e-9; later users report needing about 1e-5.

    The estimate is guarded, since a forced switch (``switch_at``) takes it before it settles and a
    near-orthogonal Adam step makes ``γ_k`` explode (an MLP at Adam lr 0.01 got SGD lr 10^4 and trained
    to NaN). Steps whose ``γ_k`` is not finite are not averaged in. At the switch, an estimate that is
    not finite or not positive keeps Adam; one above ``max_lr_ratio`` times Adam's (largest) learning
    rate is capped there. Either way a warning says so.

    After the switch: param groups keep their LR ratios (the largest gets ``(1 - β1) Λ``) and weight
    decay; the user's schedulers are moved to the new optimizer with their base LRs rescaled, so the
    schedule keeps its shape. A loop that holds its own reference to the optimizer must read
    ``state.optimizers`` again (our Trainer does).

    Composition: SWATS owns the optimizer, and the learning rate until it switches: the whole run
    without ``switch_at`` (it switches at an unknown time), so SWA with ``schedule_swa_lr=True``
    conflicts with it; with ``switch_at`` until then, so SWATS with ``switch_at`` no later than an
    LR-scheduling SWA's ``swa_start`` switches first and SWA averages after.

    Cost: a few multi-tensor ops per Adam step and one host sync to read ``γ_k``; no extra copy of
    the weights. Nothing after the switch. Batch norm is untouched.

    Resuming: the checkpoint stores ``switch_tolerance`` and ``switch_at``; a resumed run may change
    them with a warning naming each change (the estimate so far does not depend on them, and after
    the switch they no longer act). A checkpoint written before arguments were stored cannot be
    checked (a warning says so).

    Args:
        switch_tolerance: ``ε``: switch when the bias-corrected estimate is this close to ``γ_k``.
        switch_at: Switch at this time at the latest (``"0.5dur"``, ``"10ep"``), or ``None``.
        max_lr_ratio: The SGD learning rate is at most this times Adam's. The paper's runs switch
            from Adam at 1e-3 to SGD at about 0.5 (a ratio near 500), hence the default 1000.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from composer_swa import Trainer
        >>> _ = torch.manual_seed(0)
        >>> data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), batch_size=16)
        >>> model = torch.nn.Linear(4, 2)
        >>> swats = SWATS(switch_at="2ep")
        >>> trainer = Trainer(model, data, max_duration="3ep", optimizers=torch.optim.Adam(model.parameters(), lr=1e-2),
        ...                   algorithms=[swats], progress_bar=False, loggers=[])
        >>> trainer.fit()
        >>> type(trainer.state.optimizers[0]).__name__, swats.switched_at_batch
        ('SGD', 8)
    """

    events: ClassVar[frozenset[Event]] = frozenset({Event.FIT_START, Event.BATCH_START, Event.BATCH_END, Event.FIT_END})
    may_own: ClassVar[frozenset[Resource]] = frozenset({Resource.OPTIMIZER, Resource.LR})
    stored_arguments: ClassVar[tuple[str, ...]] = ("switch_tolerance", "switch_at", "max_lr_ratio")

    def __init__(self, switch_tolerance: float = 1e-9, switch_at: Time | str | None = None, max_lr_ratio: float = 1000.0) -> None:
        self.switch_tolerance = check_positive(switch_tolerance, "switch_tolerance", "a number > 0")
        self.max_lr_ratio = check_positive(max_lr_ratio, "max_lr_ratio", "a finite number > 0")
        self.switch_at = as_time(switch_at, "switch_at") if switch_at is not None else None
        past_the_end = self.switch_at is not None and self.switch_at.unit is TimeUnit.DURATION and self.switch_at.value > 1
        if self.switch_at is not None and (self.switch_at.value <= 0 or past_the_end):
            raise ValueError(f"switch_at must be after the start of the run and within it, got {str(self.switch_at)!r}")
        #: Per watched optimizer (by its index in ``state.optimizers``), the running estimate.
        self.estimates: dict[int, _Estimate] = {}
        #: The completed-batch count after which the optimizers were switched, once they are.
        self.switched_at_batch: int | None = None
        self._switch_batch: int | None = None
        self._hooks: list[RemovableHandle] = []

    @property
    def switched(self) -> bool:
        return self.switched_at_batch is not None

    def owned_resources(self, state: State) -> Mapping[Resource, Tenure]:
        if self.switch_at is None:
            return dict.fromkeys(self.may_own, Tenure())
        return {Resource.OPTIMIZER: Tenure(), Resource.LR: Tenure(stop=state.to_batches(self.switch_at), stop_by="switch_at")}

    def plan(self, event: Event, state: State) -> Sequence[Action]:
        if event is Event.BATCH_START:
            due = self._switch_batch is not None and state.timestamp.batch_count >= self._switch_batch
            return (self._switch,) if due and not self.switched else ()
        if event is Event.BATCH_END:
            converged = any(estimate.converged for estimate in self.estimates.values())
            return (self._switch,) if converged and not self.switched else ()
        if event is Event.FIT_START:
            return (self._start,)
        return (self._end,) if event is Event.FIT_END else ()

    def _start(self, state: State, logger: Logger) -> None:
        watched = [index for index, optimizer in enumerate(state.optimizers) if isinstance(optimizer, _ADAM_TYPES)]
        if not watched and not self.switched:
            names = [type(optimizer).__name__ for optimizer in state.optimizers]
            raise ValueError(f"SWATS switches Adam or AdamW to SGD, but the run's optimizers are {names}")
        if self.switch_at is not None:
            self._switch_batch = state.to_batches(self.switch_at)
        self._remove_hooks()
        for index in watched:
            estimate = self.estimates.setdefault(index, _Estimate())
            self._hooks.append(state.optimizers[index].register_step_post_hook(self._make_hook(estimate)))

    def _make_hook(self, estimate: _Estimate) -> Any:
        def after_adam_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self._observe(optimizer, estimate)

        return after_adam_step

    @torch.no_grad()
    def _observe(self, optimizer: torch.optim.Optimizer, estimate: _Estimate) -> None:
        """Updates γ_k and λ_k from the step Adam just took (read from its moment estimates)."""
        step_sq = step_dot_grad = 0.0
        beta2 = optimizer.param_groups[0]["betas"][1]
        for group in optimizer.param_groups:
            params = [p for p in group["params"] if p.grad is not None and p in optimizer.state]
            if not params:
                continue
            beta1, group_beta2 = group["betas"]
            moments = [optimizer.state[p] for p in params]
            step = float(moments[0]["step"])
            second = "max_exp_avg_sq" if group.get("amsgrad") else "exp_avg_sq"
            # Adam's step is p = -(lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps); q is p without the scale.
            denominators = torch._foreach_sqrt([m[second] for m in moments])
            torch._foreach_div_(denominators, math.sqrt(1 - group_beta2**step))
            torch._foreach_add_(denominators, group["eps"])
            directions = torch._foreach_div([m["exp_avg"] for m in moments], denominators)
            scale = group["lr"] / (1 - beta1**step)
            squared = torch.stack(torch._foreach_norm(directions)).double().square().sum()
            dots = torch.stack([torch.dot(d.flatten(), p.grad.flatten()) for d, p in zip(directions, params)]).double().sum()
            step_sq += scale**2 * float(squared)  # one host sync per group
            step_dot_grad -= scale * float(dots)
        if step_dot_grad == 0:
            return  # the paper's guard: no projection to take
        gamma = step_sq / -step_dot_grad
        if not math.isfinite(gamma):
            return  # a non-finite gradient or step: averaging it in would poison every later estimate
        estimate.steps += 1
        estimate.gamma = gamma
        estimate.ema = beta2 * estimate.ema + (1 - beta2) * estimate.gamma
        if estimate.steps > 1 and abs(estimate.corrected(beta2) - estimate.gamma) < self.switch_tolerance:
            estimate.converged = True

    def _switch(self, state: State, logger: Logger) -> None:
        if state.lr_owner is not None:  # one that does not declare Resource.LR; check_composition caught those that do
            raise AlgorithmConflictError(
                f"SWATS is switching while {state.lr_owner.name} schedules the learning rate; "
                "switch before it starts (SWATS(switch_at=...))"
            )
        lines = []
        for index, estimate in self.estimates.items():
            adam = state.optimizers[index]
            beta1, beta2 = adam.param_groups[0]["betas"]
            largest = max(group["lr"] for group in adam.param_groups)
            sgd_lr = self._guarded_lr(index, (1 - beta1) * estimate.corrected(beta2), largest, state, logger)
            if sgd_lr is None:
                continue
            estimate.sgd_lrs = [sgd_lr * group["lr"] / largest if largest > 0 else sgd_lr for group in adam.param_groups]
            state.optimizers[index] = _sgd_like(adam, estimate.sgd_lrs, momentum=beta1)
            _move_schedulers(state, adam, state.optimizers[index])
            how = "converged" if estimate.converged else f"switch_at={str(self.switch_at)!r}"
            lines.append(f"optimizer {index} to SGD(lr={sgd_lr:.4g}, momentum={beta1}) after {estimate.steps} Adam steps ({how})")
        self.switched_at_batch = state.timestamp.batch_count
        self._remove_hooks()
        logger.log_message("SWATS: switched " + "; ".join(lines), step=state.timestamp.batch_count)

    def _guarded_lr(self, index: int, sgd_lr: float, adam_lr: float, state: State, logger: Logger) -> float | None:
        """The estimate, capped at ``max_lr_ratio * adam_lr``; ``None`` (stay with Adam) when it is unusable."""
        step = state.timestamp.batch_count
        if not math.isfinite(sgd_lr) or sgd_lr <= 0:
            message = f"SWATS: the SGD learning rate estimated for optimizer {index} is {sgd_lr!r}; it stays Adam"
        elif adam_lr > 0 and sgd_lr > self.max_lr_ratio * adam_lr:
            cap = self.max_lr_ratio * adam_lr
            message = (
                f"SWATS: the SGD learning rate estimated for optimizer {index}, {sgd_lr:.4g}, is more than "
                f"max_lr_ratio={self.max_lr_ratio:g} times Adam's {adam_lr:.4g}; capped at {cap:.4g}"
            )
            sgd_lr = cap
        else:
            return sgd_lr
        warnings.warn(message, stacklevel=2)
        logger.log_message(message, step=step)
        return sgd_lr if math.isfinite(sgd_lr) and sgd_lr > 0 else None

    def _end(self, state: State, logger: Logger) -> None:
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def summary(self) -> dict[str, Any]:
        return {"switched_at_batch": self.switched_at_batch, "sgd_lrs": {i: e.sgd_lrs for i, e in self.estimates.items()}}

    def on_load(self, state: State) -> None:
        """Replaces the Adam optimizers with SGD again when the saved run had switched."""
        if not self.switched:
            return
        for index, estimate in self.estimates.items():
            adam = state.optimizers[index]
            if estimate.sgd_lrs and isinstance(adam, _ADAM_TYPES):
                state.optimizers[index] = _sgd_like(adam, estimate.sgd_lrs, momentum=adam.param_groups[0]["betas"][0])
                _move_schedulers(state, adam, state.optimizers[index])

    def state_dict(self) -> dict[str, Any]:
        return {
            "switched_at_batch": self.switched_at_batch,
            "estimates": {
                index: {"steps": e.steps, "gamma": e.gamma, "ema": e.ema, "converged": e.converged, "sgd_lrs": e.sgd_lrs}
                for index, e in self.estimates.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.switched_at_batch = state["switched_at_batch"]
        self.estimates = {int(index): _Estimate(**saved) for index, saved in state["estimates"].items()}


def _sgd_like(adam: torch.optim.Optimizer, lrs: list[float], momentum: float) -> torch.optim.SGD:
    groups = [
        {"params": group["params"], "lr": lr, "momentum": momentum, "weight_decay": group["weight_decay"]}
        for group, lr in zip(adam.param_groups, lrs)
    ]
    return torch.optim.SGD(groups, lr=lrs[0])


def _move_schedulers(state: State, old: torch.optim.Optimizer, new: torch.optim.Optimizer) -> None:
    """Points the schedulers of ``old`` at ``new``, rescaling base LRs so the schedule keeps its shape."""
    ratios = [
        new_group["lr"] / old_group["lr"] if old_group["lr"] > 0 else 0.0
        for old_group, new_group in zip(old.param_groups, new.param_groups)
    ]
    pending = list(state.schedulers)
    while pending:
        scheduler = pending.pop()
        pending += getattr(scheduler, "_schedulers", [])  # SequentialLR, ChainedScheduler
        if getattr(scheduler, "optimizer", None) is old:
            scheduler.optimizer = new
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs = [base * ratio for base, ratio in zip(scheduler.base_lrs, ratios)]
