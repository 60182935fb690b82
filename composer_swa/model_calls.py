"""How a model runs on a batch, wherever it runs: training, evaluation, statistics passes.

A :class:`~composer_swa.models.ComposerModel` is called through its protocol, as Composer's
Trainer calls it: ``model(batch)`` (its ``forward(batch)``), ``model.loss(outputs, batch)``,
``model.eval_forward(batch)`` and ``model.update_metric(batch, outputs, metric)`` on copies of
``model.get_metrics(is_train=False)``.

Any other ``torch.nn.Module`` is called by the batch rule: ``model(inputs)`` for an ``(inputs,
targets, ...)`` tuple or list, ``model(**batch)`` for a dict, ``model(batch)`` for a bare tensor.
Its loss: ``loss_fn(outputs, targets)`` for a tuple or list (cross-entropy by default),
``loss_fn(outputs, batch)`` or the model's own ``outputs.loss`` for a dict. Its metrics: the
sample-weighted mean ``loss`` and, when the outputs are class logits for integer targets, ``accuracy``.

A statistics pass (SWA's batch-norm refresh) runs the training forward: on the training device, in
the same microbatches, at the same precision.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import itertools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from composer_swa.batches import batch_num_samples, split_batch, to_device
from composer_swa.models.base import ComposerModel

if TYPE_CHECKING:
    from torchmetrics import Metric

__all__ = ["ModelCalls", "compute_loss", "default_loss", "forward_batch", "statistics_forward"]

_SEQUENCES = (tuple, list)  # checked before Mapping: an isinstance check against an ABC costs more per step
LossFn = Callable[[Any, Any], torch.Tensor]


class ModelCalls:
    """The calls a run makes to ``model``: the protocol for a ComposerModel, the batch rule for the rest.

    Args:
        model: The model, unwrapped (a DDP or compiled wrapper is passed to :meth:`forward` instead).
        loss_fn: A plain module's loss; a ComposerModel computes its own.

    Raises:
        ValueError: ``loss_fn`` given with a ComposerModel; or a plain module defines a ``loss()``
            method and no ``loss_fn`` is given (the batch rule would silently not call it).

    Example:
        >>> calls = ModelCalls(torch.nn.Linear(2, 3))
        >>> batch = (torch.ones(4, 2), torch.tensor([0, 1, 2, 0]))
        >>> outputs = calls.forward(calls.model, batch)
        >>> calls.loss(outputs, batch).shape, sorted(calls.eval_metrics(torch.device("cpu")))
        (torch.Size([]), ['loss'])
    """

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn | None = None) -> None:
        self.model = model
        #: The model when it is a ComposerModel (called through its protocol), else ``None``.
        self.composer_model = model if isinstance(model, ComposerModel) else None
        self.composer = self.composer_model is not None
        if self.composer and loss_fn is not None:
            raise ValueError(
                f"loss_fn={loss_fn!r} was given with a ComposerModel ({type(model).__name__}), which computes its own "
                "loss in loss(outputs, batch); leave loss_fn out (it is for plain torch.nn.Module models)"
            )
        if not self.composer and loss_fn is None and inspect.isfunction(getattr(type(model), "loss", None)):
            raise ValueError(
                f"model {type(model).__name__} defines a loss() method but is a plain torch.nn.Module, so the Trainer "
                "would not call it (it computes loss_fn(outputs, targets), cross-entropy by default); subclass "
                "composer_swa.models.ComposerModel (forward(batch), loss(outputs, batch)) to have it called, "
                "or pass loss_fn=... to say which loss to use"
            )
        self.loss_fn = loss_fn

    def forward(self, module: Callable[..., Any], batch: Any) -> Any:
        """The training forward of ``module`` (the model, or DDP/compiled around it) on one batch."""
        return _training_forward(self.composer, module, batch)

    def loss(self, outputs: Any, batch: Any) -> torch.Tensor:
        """The scalar loss to backpropagate, from :meth:`forward`'s outputs."""
        if self.composer_model is not None:
            return _total_loss(self.composer_model.loss(outputs, batch))
        return check_scalar_loss(compute_loss(self.loss_fn, outputs, batch))

    def eval_forward(self, module: Callable[..., Any], batch: Any) -> Any:
        """Evaluation's forward: ``model.eval_forward(batch)`` (unwrapped, as Composer), else :meth:`forward`."""
        # outputs=None passed explicitly: Composer's docs show eval_forward(self, batch, outputs) without a default.
        if self.composer_model is not None:
            return self.composer_model.eval_forward(batch, None)
        return forward_batch(module, batch)

    def eval_metrics(self, device: torch.device) -> dict[str, Metric]:
        """Fresh metrics for one evaluation, on ``device``: copies of ``get_metrics(is_train=False)``, or ``loss``."""
        if self.composer_model is not None:
            metrics = self.composer_model.get_metrics(is_train=False)
            return {name: copy.deepcopy(metric).to(device) for name, metric in metrics.items()}
        from composer_swa.metrics import mean_loss_metric  # torchmetrics loads only when a run evaluates

        return {"loss": mean_loss_metric(device)}

    def update_metrics(self, metrics: dict[str, Metric], batch: Any, outputs: Any) -> None:
        """Adds one evaluation batch to ``metrics`` (a plain module's ``accuracy`` appears with class logits)."""
        if self.composer_model is not None:
            for metric in metrics.values():
                self.composer_model.update_metric(batch, outputs, metric)
            return
        from composer_swa.metrics import ArgmaxAccuracy, is_class_logits

        metrics["loss"].update(self.loss(outputs, batch).detach(), weight=batch_num_samples(batch))
        targets = batch[1] if isinstance(batch, _SEQUENCES) else None
        if is_class_logits(outputs, targets):
            if "accuracy" not in metrics:  # every process sees the same kind of outputs: the sets match
                metrics["accuracy"] = ArgmaxAccuracy().to(outputs.device)
            metrics["accuracy"].update(outputs, targets)


def _training_forward(composer: bool, module: Callable[..., Any], batch: Any) -> Any:
    return module(batch) if composer else forward_batch(module, batch)


def _total_loss(loss: Any) -> torch.Tensor:
    """A ComposerModel's loss as Composer's Trainer reduces it: ``loss["total"]``, else the sum of each part's mean."""
    if isinstance(loss, Mapping):
        if "total" in loss:
            return check_scalar_loss(loss["total"])
        parts = list(loss.values())
    else:
        parts = list(loss) if isinstance(loss, _SEQUENCES) else [loss]
    if not parts or not all(isinstance(part, torch.Tensor) for part in parts):
        raise ValueError(f"ComposerModel.loss() must return a tensor, a sequence of tensors or a dict of them, got {loss!r:.200}")
    return torch.stack([part.mean() for part in parts]).sum() if len(parts) > 1 else parts[0].mean()


def check_scalar_loss(loss: Any) -> torch.Tensor:
    """``loss``, if it is a scalar tensor.

    Example:
        >>> check_scalar_loss(torch.ones(2))
        Traceback (most recent call last):
        ...
        ValueError: the loss must be a scalar tensor, got (2,); reduce it in loss_fn (e.g. reduction='mean')
    """
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"the loss must be a scalar tensor, got {shape}; reduce it in loss_fn (e.g. reduction='mean')")
    return loss


def forward_batch(model: Callable[..., Any], batch: Any) -> Any:
    """Calls a plain ``model`` on ``batch`` by the batch rule above.

    Example:
        >>> double = lambda x: 2 * x
        >>> forward_batch(double, (torch.ones(2), torch.zeros(2))), forward_batch(double, torch.ones(1))
        (tensor([2., 2.]), tensor([2.]))
    """
    if isinstance(batch, _SEQUENCES) and batch:
        return model(batch[0])
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, torch.Tensor):
        return model(batch)
    raise TypeError(
        f"a batch must be an (inputs, targets) tuple/list, a dict of model inputs or a tensor, got {type(batch).__name__}"
        + (" of length 0" if isinstance(batch, _SEQUENCES) else "")
    )


def compute_loss(loss_fn: LossFn | None, outputs: Any, batch: Any) -> torch.Tensor:
    """``loss_fn(outputs, targets)`` for tuple batches; for dicts ``loss_fn(outputs, batch)`` or ``outputs.loss``."""
    if isinstance(batch, _SEQUENCES):
        if len(batch) < 2:
            raise TypeError(f"a loss needs an (inputs, targets) batch, got a {type(batch).__name__} of length {len(batch)}")
        return (loss_fn or default_loss)(outputs, batch[1])
    if isinstance(batch, Mapping):
        if loss_fn is not None:
            return loss_fn(outputs, batch)
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else getattr(outputs, "loss", None)
        if loss is None:
            raise ValueError(
                "dict batches need outputs with a 'loss' (outputs.loss or outputs['loss']), or a loss_fn(outputs, batch)"
            )
        return loss
    raise TypeError(f"cannot compute a loss for a batch of type {type(batch).__name__}; pass (inputs, targets) or a dict")


def default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the last dimension: ``(N, C)`` logits, or ``(N, T, C)`` for sequences."""
    if outputs.dim() > 2 and outputs.dim() == targets.dim() + 1:
        return F.cross_entropy(outputs.flatten(0, -2), targets.flatten())
    return F.cross_entropy(outputs, targets)


def statistics_forward(
    model: torch.nn.Module,
    device: torch.device | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    microbatches: int = 1,
    microbatch_size: int | None = None,
) -> Callable[[Any], Any]:
    """``forward(batch)`` for a statistics pass: the batch on ``device``, split and cast as training does.

    A ComposerModel runs its training forward, ``model(batch)``; a plain module the batch rule.

    Args:
        model: The model to run (unwrapped: a statistics pass runs no collective).
        device: Where the batch goes; default: where the model's first tensor lives.
        autocast: A factory of the context each forward runs in (training's precision).
        microbatches: Parts the batch is split into (training's ``grad_accum``).
        microbatch_size: Or samples per part (training's ``device_train_microbatch_size``).

    Returns:
        A function that runs ``model`` on one batch and returns the last microbatch's outputs.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> forward = statistics_forward(model, microbatches=2)
        >>> forward((torch.ones(4, 3), torch.zeros(4))).shape  # the second half of the batch
        torch.Size([2, 1])
    """
    if device is None:
        device = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
    composer = isinstance(model, ComposerModel)

    def forward(batch: Any) -> Any:
        outputs = None
        for microbatch in split_batch(to_device(batch, device), microbatches, microbatch_size):
            with autocast():
                outputs = _training_forward(composer, model, microbatch)
        return outputs

    return forward
