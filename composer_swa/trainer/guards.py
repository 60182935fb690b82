"""The Trainer's guards: a non-finite loss, or a model whose parameters changed, stops the run with a clear error.

Checking a loss on the host every step would wait for the accelerator every step. Instead each loss
is folded into a flag on the device (``isfinite``, and the first bad batch's number), read back only
where the loop waits anyway or where it matters: at each log interval and evaluation, before every
checkpoint and at the end of training. Before an averaging update (SWA, EMA, LAWA) the live weights
are checked (one multi-tensor norm), so no average takes in a NaN; a NaN loss reaches the weights
through its gradient. A run that averages every batch therefore waits on the device once a batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from composer_swa.algorithms.averaging_algorithm import AveragingAlgorithm
from composer_swa.checkpoint.finite import NonFiniteError, check_finite
from composer_swa.distributed.process_group import any_rank
from composer_swa.distributed.sharded import is_dtensor

if TYPE_CHECKING:
    from composer_swa.events import Event
    from composer_swa.state import State

__all__ = ["ModelStructureError"]

_FOLD_EVERY = 64  # losses kept before they are reduced on the device
_NONE = 2**62  # "no bad batch": larger than any batch number


class ModelStructureError(RuntimeError):
    """The model's parameters changed during training (a layer replaced in ``forward``, say).

    The optimizer and the averages still hold the old tensors, so training and averaging would go on
    silently on weights the model no longer uses.
    """


class RunGuard:
    """Watches one run: the losses (on the device) and the model's parameters (names, shapes, identity).

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> guard = RunGuard(model, torch.device("cpu"))
        >>> guard.note_loss(torch.tensor(float("nan")), batch=7)
        >>> guard.check_losses()
        Traceback (most recent call last):
        ...
        composer_swa.checkpoint.finite.NonFiniteError: the training loss is nan at batch 7 ...
    """

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = model
        self.device = device
        #: The run's parameters as they were at the start: name -> (tensor id, shape).
        self._layout = _layout(model)
        #: The same, as the tensors themselves: what the check before each averaging update compares (cheaply).
        self._parameters = [(name, parameter, parameter.shape) for name, parameter in model.named_parameters()]
        self._sharded = any(is_dtensor(parameter) for _, parameter, _ in self._parameters)
        #: Losses not yet folded into the flag, with their batch numbers (no device work per step).
        self._pending: list[torch.Tensor] = []
        self._pending_batches: list[int] = []
        self._first_bad_batch: torch.Tensor | None = None  # _NONE while every loss was finite
        self._first_bad_loss: torch.Tensor | None = None

    def note_loss(self, loss: torch.Tensor, batch: int) -> None:
        """Keeps ``loss`` (of the run's ``batch``-th batch, counted from 1) for the next check; no host sync."""
        self._pending.append(loss.detach())
        self._pending_batches.append(batch)
        if len(self._pending) >= _FOLD_EVERY:  # bounded memory however rarely the run checks
            self._fold()

    def _fold(self) -> None:
        """Reduces the pending losses into the first bad batch and its loss, on the device."""
        if not self._pending:
            return
        losses = torch.stack([loss.float() for loss in self._pending])
        batches = torch.tensor(self._pending_batches, device=losses.device)
        self._pending, self._pending_batches = [], []
        ranked = torch.where(torch.isfinite(losses), _NONE, batches)
        index = torch.argmin(ranked)
        if self._first_bad_batch is None or self._first_bad_loss is None:
            self._first_bad_batch, self._first_bad_loss = ranked[index], losses[index]
            return
        earlier = self._first_bad_batch <= ranked[index]
        self._first_bad_loss = torch.where(earlier, self._first_bad_loss, losses[index])
        self._first_bad_batch = torch.minimum(self._first_bad_batch, ranked[index])

    def check_losses(self) -> None:
        """Raises :class:`NonFiniteError` naming the first batch whose training loss was NaN or infinite."""
        self._fold()
        batch = int(self._first_bad_batch) if self._first_bad_batch is not None else _NONE
        if not any_rank(batch != _NONE, self.device):
            return
        value = float(self._first_bad_loss) if batch != _NONE and self._first_bad_loss is not None else "not finite"
        where = f"at batch {batch} (counted from 1)" if batch != _NONE else "on another process"
        raise NonFiniteError(
            f"the training loss is {value} {where}; training stopped before saving, averaging or exporting it. "
            "Lower the learning rate, clip gradients, or check that batch's data for NaN or infinite values"
        )

    def check_structure(self) -> None:
        """Raises :class:`ModelStructureError` naming a parameter added, removed, reshaped or replaced."""
        now = _layout(self.model)
        if now == self._layout:
            return
        changes = []
        for name in sorted(self._layout.keys() | now.keys()):
            before, after = self._layout.get(name), now.get(name)
            if before is None:
                changes.append(f"{name!r} (shape {after and after[1]}) is new")
            elif after is None:
                changes.append(f"{name!r} (shape {before[1]}) is gone")
            elif before[1] != after[1]:
                changes.append(f"{name!r} changed shape from {before[1]} to {after[1]}")
            elif before[0] != after[0]:
                changes.append(f"{name!r} (shape {after[1]}) is a new tensor")
        raise ModelStructureError(
            f"the model's parameters changed during training: {'; '.join(changes)}. The optimizer and the averages "
            "still hold the old tensors. Create every layer in __init__, not in forward(), and keep it"
        )

    def before_averaging(self, state: State, event: Event) -> None:
        """Before an averaging algorithm acts at ``event``: structure and live weights must be sound.

        Under DDP every process holds the same weights (a NaN loss anywhere reaches them all through the
        gradient all-reduce), so the local check agrees on every process and needs no collective: SWA's
        updates stay communication-free. Sharded weights (FSDP2) differ per process and are agreed on.
        """
        if not any(isinstance(a, AveragingAlgorithm) and a.match(event, state) for a in state.algorithms):
            return
        named = list(self.model.named_parameters())
        unchanged = len(named) == len(self._parameters) and all(
            name == then_name and now is then and now.shape == shape
            for (name, now), (then_name, then, shape) in zip(named, self._parameters)
        )
        if not unchanged:  # the full check names what changed
            self.check_structure()
        check_finite(
            named,
            f"update the average at {state.timestamp}: the model's weight",
            self.device if self._sharded else None,
            before=self.check_losses,  # a NaN loss is the likelier cause, and names its batch
        )

    def check_run(self) -> None:
        """The losses so far and the model's structure (before a checkpoint, an evaluation, the end)."""
        self.check_losses()
        self.check_structure()


def _layout(model: torch.nn.Module) -> dict[str, tuple[int, tuple[int, ...]]]:
    return {name: (id(parameter), tuple(parameter.shape)) for name, parameter in model.named_parameters()}
