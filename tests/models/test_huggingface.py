"""HuggingFaceModel on tiny randomly initialised transformers models built from configs (no download)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchmetrics.classification import MulticlassAccuracy
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

from composer_swa import Trainer
from composer_swa.metrics import LanguageCrossEntropy, LanguagePerplexity
from composer_swa.models import HuggingFaceModel
from tests.helpers import quiet

VOCABULARY = 32


def gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2, n_head=2, n_embd=16, vocab_size=VOCABULARY, n_positions=16, bos_token_id=0, eos_token_id=0,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        num_hidden_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32, vocab_size=VOCABULARY,
        num_labels=2, max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertForSequenceClassification(config)


class Tokens(Dataset[dict[str, torch.Tensor]]):
    """Random token rows labelled with themselves (causal LM), some positions ignored (-100)."""

    def __init__(self, rows: int = 12, length: int = 8, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, VOCABULARY, (rows, length), generator=generator)
        self.labels = self.ids.clone()
        self.labels[::3, -2:] = -100

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.labels[index], "row": torch.tensor(index)}


def test_the_loss_is_the_transformers_models_own_and_unknown_keys_are_left_out() -> None:
    hf = gpt2()
    model = HuggingFaceModel(hf)
    batch = next(iter(DataLoader(Tokens(), batch_size=4)))  # has "row", which GPT-2's forward does not take

    loss = model.loss(model(batch), batch)

    assert model.shift_labels  # a registered causal LM
    assert torch.equal(loss, hf(input_ids=batch["input_ids"], labels=batch["labels"]).loss)


def test_a_training_step_descends_the_models_own_loss() -> None:
    model = HuggingFaceModel(gpt2())
    reference = copy.deepcopy(model.model)
    batch = next(iter(DataLoader(Tokens(), batch_size=4)))
    reference(input_ids=batch["input_ids"], labels=batch["labels"]).loss.backward()

    Trainer(model, [batch], "1ba", optimizers=torch.optim.SGD(model.parameters(), lr=0.5), **quiet()).fit()

    for (name, trained), start in zip(model.model.named_parameters(), reference.parameters()):
        expected = start.detach() - 0.5 * (start.grad if start.grad is not None else 0)
        assert torch.allclose(trained, expected, atol=1e-6), name


@pytest.mark.parametrize("use_logits", [True, False])
def test_language_metrics_equal_the_token_weighted_mean_of_the_models_own_loss(use_logits: bool) -> None:
    model = HuggingFaceModel(gpt2(), metrics=[LanguageCrossEntropy(), LanguagePerplexity()], use_logits=use_logits)
    data = DataLoader(Tokens(rows=10), batch_size=4)  # 4 + 4 + 2 rows
    trainer = Trainer(model, data, "1ba", eval_dataloader=data, **quiet())

    values = trainer.eval()

    losses, counts = [], []
    with torch.no_grad():
        for batch in data:
            losses.append(float(model.model(input_ids=batch["input_ids"], labels=batch["labels"]).loss))
            counts.append(int((batch["labels"][:, 1:] != -100).sum()))  # the model predicts each next token
    expected = float(np.average(losses, weights=counts))
    assert values == pytest.approx({"eval/LanguageCrossEntropy": expected, "eval/LanguagePerplexity": np.exp(expected)})
    assert sorted(trainer.state.eval_metrics["eval"]) == ["LanguageCrossEntropy", "LanguagePerplexity"]
    assert data.dataset.labels[0, -1] == -100 and data.dataset.labels[1, -1] != -100  # type: ignore[attr-defined]


def test_sequence_classification_accuracy_on_logits_against_numpy() -> None:
    hf = bert()
    model = HuggingFaceModel(hf, metrics=[MulticlassAccuracy(num_classes=2, average="micro")], use_logits=True)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCABULARY, (10, 6), generator=generator)
    labels = torch.randint(0, 2, (10,), generator=generator)
    data = [{"input_ids": ids[s : s + 4], "attention_mask": torch.ones_like(ids[s : s + 4]), "labels": labels[s : s + 4]}
            for s in (0, 4, 8)]  # fmt: skip
    trainer = Trainer(model, data, "1ba", eval_dataloader=data, **quiet())

    values = trainer.eval()

    with torch.no_grad():
        logits = hf(input_ids=ids).logits.numpy()
    assert not model.shift_labels
    assert values == pytest.approx({"eval/MulticlassAccuracy": float((logits.argmax(1) == labels.numpy()).mean())})
    assert all("labels" in batch for batch in data)  # evaluation took labels out of its forward, not out of the data


def test_eval_metrics_default_to_copies_of_the_metrics() -> None:
    metric = LanguageCrossEntropy()
    model = HuggingFaceModel(gpt2(), metrics=[metric])
    assert model.get_metrics(is_train=True) == {"LanguageCrossEntropy": metric}
    (copied,) = model.get_metrics(is_train=False).values()
    assert isinstance(copied, LanguageCrossEntropy) and copied is not metric


class FakeTokenizer:
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


def test_what_is_not_supported_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"peft_config=.*PEFT/LoRA adapters are not supported"):
        HuggingFaceModel(gpt2(), peft_config={"peft_type": "LORA"})
    model = HuggingFaceModel(gpt2())
    batch: dict[str, Any] = {"input_ids": torch.ones(1, 3, dtype=torch.long), "mode": "generate"}
    with pytest.raises(ValueError, match=r"mode='generate' asks for generation"):
        model.eval_forward(batch)
    with pytest.raises(ValueError, match=r"HuggingFaceModel takes dict batches .* got tuple"):
        model((torch.ones(1, 3, dtype=torch.long),))
    with pytest.raises(ValueError, match="the transformers model returned no loss: the batch needs 'labels'"):
        model.loss(model({"input_ids": torch.ones(1, 3, dtype=torch.long)}), {})


def test_a_larger_tokenizer_needs_resizing() -> None:
    with pytest.raises(ValueError, match=f"the tokenizer has 40 tokens but the model's embeddings {VOCABULARY}"):
        HuggingFaceModel(gpt2(), tokenizer=FakeTokenizer(40))
    model = HuggingFaceModel(gpt2(), tokenizer=FakeTokenizer(40), allow_embedding_resizing=True)
    assert model.model.get_input_embeddings().weight.shape[0] == 40
