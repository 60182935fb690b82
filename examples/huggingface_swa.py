"""SWA inside transformers.Trainer: a tiny BERT, built from a config (nothing is downloaded).

    pip install 'composer_swa[hf]' && python examples/huggingface_swa.py

The callback maps the Trainer's steps to composer_swa's events, evaluates with the average while
the window is open (eval_with_average), and saves its state next to each checkpoint-N folder.
"""

from __future__ import annotations

import tempfile

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from composer_swa import SWA
from composer_swa.integrations import HuggingFaceCallback


class TokenTask(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Sequences of 16 tokens; the label says whether most of them are below 20."""

    def __init__(self, samples: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(1, 40, (samples, 16), generator=generator)
        self.labels = ((self.input_ids < 20).sum(dim=1) > 8).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}


def main() -> None:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = BertForSequenceClassification(config)
    swa = SWA(swa_start="0.6dur", update_interval="4ba", eval_with_average=True)
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=6,
            per_device_train_batch_size=32,
            learning_rate=3e-3,
            eval_strategy="epoch",
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
            logging_strategy="no",
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=TokenTask(1024, seed=0),
            eval_dataset=TokenTask(512, seed=1),
            compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())},
            callbacks=[HuggingFaceCallback([swa])],
        )
        trainer.train()
        metrics = trainer.evaluate()  # the model now holds the SWA average
    print(f"averaged {swa.n_averaged} snapshots; eval accuracy of the SWA model: {metrics['eval_accuracy']:.1%}")


if __name__ == "__main__":
    main()
