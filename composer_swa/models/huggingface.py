"""``HuggingFaceModel``: a 🤗 Transformers model as a ComposerModel, with Composer's behaviour.

Batches are dicts (a ``datasets`` row collated, with ``labels``). Training: the model is called
with the batch's keys that its ``forward`` takes, and the loss is the one it returns. Evaluation:
``eval_forward`` returns the model's output, or with ``use_logits=True`` its logits from a forward
without ``labels``; each metric is updated with ``(logits, labels)``, the labels shifted one token
left for a causal LM (as the model shifts them for its own loss). Composer hands metrics the labels
only with ``use_logits=True``; here they get them, and the logits, either way, and a metric with
``needs_batch = True`` gets ``update(batch=..., outputs=..., labels=...)`` as in Composer.

Not supported here, refused by name: ``peft_config`` (LoRA), generation evaluation (``mode:
"generate"`` batches) and in-context-learning batches (``mode: "icl_task"``).
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from composer_swa.models.base import ComposerModel

if TYPE_CHECKING:
    from torchmetrics import Metric

__all__ = ["HuggingFaceModel"]

log = logging.getLogger(__name__)


class HuggingFaceModel(ComposerModel):
    """Wraps a ``transformers.PreTrainedModel`` for the :class:`~composer_swa.Trainer`.

    Args:
        model: The transformers model.
        tokenizer: Its tokenizer (kept as ``self.tokenizer``; checked against the vocabulary size).
        use_logits: Evaluation hands metrics the logits (labels taken out of the forward) instead of
            the model's whole output.
        metrics: Training metrics (torchmetrics ``Metric`` objects), named by class.
        eval_metrics: Evaluation metrics; default: copies of ``metrics``.
        shift_labels: Shift labels one token left for metrics; default: whether ``model`` is a
            registered causal LM (a subclass of one included).
        allow_embedding_resizing: Grow the embeddings to the tokenizer's size when it is larger.
        peft_config: Not supported (``None`` only).
        should_save_peft_only: Only meaningful with ``peft_config``; accepted for Composer's signature.

    Example:
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> from composer_swa.metrics import LanguageCrossEntropy
        >>> config = GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=16, n_positions=8, bos_token_id=0, eos_token_id=0)
        >>> model = HuggingFaceModel(GPT2LMHeadModel(config), metrics=[LanguageCrossEntropy()], use_logits=True)
        >>> batch = {"input_ids": torch.tensor([[1, 2, 3]]), "labels": torch.tensor([[1, 2, 3]])}
        >>> model.shift_labels, model.loss(model(batch), batch).shape
        (True, torch.Size([]))
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any | None = None,
        use_logits: bool | None = False,
        metrics: Sequence[Metric] | None = None,
        eval_metrics: Sequence[Metric] | None = None,
        shift_labels: bool | None = None,
        allow_embedding_resizing: bool = False,
        peft_config: Any | None = None,
        should_save_peft_only: bool = True,
    ) -> None:
        if peft_config is not None:
            raise ValueError(
                f"peft_config={peft_config!r}: PEFT/LoRA adapters are not supported by composer_swa's HuggingFaceModel; "
                "apply the adapter to the model yourself (peft.get_peft_model) and pass the result as model"
            )
        super().__init__()
        self.model: Any = model  # a transformers model: its methods are not torch.nn.Module's
        self.config: Any = model.config
        self.tokenizer = tokenizer
        self.use_logits = bool(use_logits)
        self.should_save_peft_only = should_save_peft_only
        self.model_forward_args = set(inspect.signature(model.forward).parameters)
        self.labels: torch.Tensor | None = None  # set by eval_forward, read by update_metric
        self.train_metrics = _by_class_name(metrics) if metrics is not None else None
        self.val_metrics = _by_class_name(eval_metrics) if eval_metrics is not None else copy.deepcopy(self.train_metrics)
        causal = is_causal_lm(model)
        self.shift_labels = causal if shift_labels is None else shift_labels
        if causal and not self.shift_labels:
            log.warning("shift_labels=False for a causal LM: metrics would compare each token's logits with itself")
        self._check_tokenizer(allow_embedding_resizing)

    def _check_tokenizer(self, allow_embedding_resizing: bool) -> None:
        if self.tokenizer is None:
            return
        vocabulary, tokens = self.config.vocab_size, len(self.tokenizer)
        if tokens <= vocabulary:
            return
        if not allow_embedding_resizing:
            raise ValueError(
                f"the tokenizer has {tokens} tokens but the model's embeddings {vocabulary}; call "
                f"model.resize_token_embeddings({tokens}) first, or pass allow_embedding_resizing=True"
            )
        log.warning("resizing the model's embeddings from %d to the tokenizer's %d tokens", vocabulary, tokens)
        self.model.resize_token_embeddings(tokens)

    def forward(self, batch: Any) -> Any:
        if not isinstance(batch, Mapping):
            raise ValueError(
                f"HuggingFaceModel takes dict batches (keys named as the model's forward arguments), got {type(batch).__name__}"
            )
        return self.model(**{key: value for key, value in batch.items() if key in self.model_forward_args})

    def loss(self, outputs: Any, batch: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs[0]
        if loss is None:
            raise ValueError("the transformers model returned no loss: the batch needs 'labels'")
        return loss

    def eval_forward(self, batch: Any, outputs: Any | None = None) -> Any:
        mode = batch.get("mode") if isinstance(batch, Mapping) else None
        if mode in ("generate", "icl_task"):
            raise ValueError(
                f"a batch with mode={mode!r} asks for generation or in-context-learning evaluation, which "
                "composer_swa's HuggingFaceModel does not support; evaluate with labelled batches"
            )
        labels = batch.get("labels") if isinstance(batch, Mapping) else None
        if self.shift_labels and labels is not None:
            labels = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], -100)], dim=1)  # the model's own shift
        self.labels = labels
        if not self.use_logits:
            return outputs if outputs is not None else self.forward(batch)
        if outputs is None:
            inputs = {key: value for key, value in batch.items() if key != "labels"}  # no loss; the batch stays whole
            if self.config.is_encoder_decoder and "decoder_input_ids" not in inputs:
                inputs["decoder_input_ids"] = self.model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
            outputs = self.forward(inputs)
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[1 if outputs[0].dim() == 0 else 0]
        return logits.squeeze(1) if logits.dim() == 2 and logits.shape[1] == 1 else logits

    def get_metrics(self, is_train: bool = False) -> dict[str, Metric]:
        metrics = self.train_metrics if is_train else self.val_metrics
        return dict(metrics) if metrics else {}

    def update_metric(self, batch: Any, outputs: Any, metric: Metric) -> None:
        labels = self.labels
        if labels is not None and labels.device != metric.device:
            labels = labels.to(metric.device)
        if getattr(metric, "needs_batch", False):
            metric.update(batch=batch, outputs=outputs, labels=labels)
            return
        # Metrics take logits, as with use_logits=True: a whole output (use_logits=False) hands over its logits.
        logits = outputs["logits"] if isinstance(outputs, Mapping) and "logits" in outputs else outputs
        metric.update(logits, labels)


def _by_class_name(metrics: Sequence[Metric]) -> dict[str, Metric]:
    return {type(metric).__name__: metric for metric in metrics}


def is_causal_lm(model: torch.nn.Module) -> bool:
    """Whether ``model`` is (a subclass of) the causal-LM class transformers registers for its config's type."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    registered = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(getattr(model.config, "model_type", ""), ())
    names = {registered} if isinstance(registered, str) else set(registered)
    return any(cls.__name__ in names for cls in type(model).__mro__)
