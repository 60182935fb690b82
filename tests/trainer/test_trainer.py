from __future__ import annotations

import copy
import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa import Callback, Event, State, Trainer
from composer_swa.loggers import Logger
from tests.helpers import DictDataset, DictModel, make_loader, mlp, quiet


class EventLog(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def run_event(self, event: Event, state: State, logger: Logger) -> None:
        self.events.append((event.value, state.timestamp.batch_count))


def test_tuple_batches_match_a_hand_written_loop(loader: DataLoader) -> None:
    reference, model = mlp(), mlp()
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(reference(x), y).backward()
            optimizer.step()
    trainer = Trainer(model, loader, "2ep", optimizers=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), **quiet())
    trainer.fit()
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_dict_batches_take_the_loss_from_the_outputs() -> None:
    loader = DataLoader(DictDataset(), batch_size=16)
    model = DictModel()
    before = model.linear.weight.detach().clone()
    trainer = Trainer(model, loader, "2ep", eval_dataloader=loader, **quiet())
    trainer.fit()
    assert not torch.equal(before, model.linear.weight)
    with torch.no_grad():
        expected = sum(model(**b)["loss"] * len(b["x"]) for b in loader) / 48
    assert float(trainer.state.eval_metrics["eval"]["loss"].compute()) == pytest.approx(float(expected), rel=1e-5)


def test_dict_batches_with_a_loss_fn() -> None:
    loader = DataLoader(DictDataset(), batch_size=16)
    seen = []

    def loss_fn(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        seen.append(batch["labels"].shape[0])
        return torch.nn.functional.cross_entropy(outputs["logits"], batch["labels"])

    Trainer(DictModel(), loader, "1ep", loss_fn=loss_fn, **quiet()).fit()
    assert seen == [16, 16, 16]


@pytest.mark.parametrize(
    ("samples", "batch_size", "grad_accum"),
    [(96, 32, 4), (30, 10, 3)],  # 4 microbatches of 8; and 10 split into 4, 3, 3 (weighted by size)
)
def test_grad_accumulation_matches_one_full_batch(samples: int, batch_size: int, grad_accum: int) -> None:
    loader = make_loader(samples=samples, batch_size=batch_size)
    whole, accumulated = mlp(), mlp()
    Trainer(whole, loader, "3ep", optimizers=torch.optim.SGD(whole.parameters(), lr=0.5), **quiet()).fit()
    optimizer = torch.optim.SGD(accumulated.parameters(), lr=0.5)
    Trainer(accumulated, loader, "3ep", optimizers=optimizer, grad_accum=grad_accum, **quiet()).fit()
    for a, b in zip(whole.parameters(), accumulated.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_eval_reports_sample_weighted_loss_and_accuracy() -> None:
    loader = make_loader(samples=50, batch_size=16)  # last batch of 2
    model = mlp()
    trainer = Trainer(model, loader, "1ep", eval_dataloader=loader, **quiet())
    trainer.fit()
    x, y = loader.dataset.tensors
    with torch.no_grad():
        logits = model(x)
    metrics = trainer.eval()
    assert metrics["eval/accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert metrics["eval/loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)


def test_event_order_and_batch_counts(loader: DataLoader) -> None:
    log = EventLog()
    Trainer(mlp(), loader, "1ep", eval_dataloader=loader, callbacks=[log], eval_interval="2ba", **quiet()).fit()
    names = [name for name, _ in log.events]
    assert names[:3] == ["init", "fit_start", "epoch_start"]
    first_batch = names[3:9]
    assert first_batch == ["batch_start", "after_forward", "after_loss", "after_backward", "after_train_batch", "batch_end"]
    assert ("batch_end", 1) in log.events and ("batch_end", 4) in log.events  # counted before BATCH_END
    assert [count for name, count in log.events if name == "eval_start"] == [2, 4]
    assert names[-1] == "fit_end"
    assert names.count("epoch_end") == 1


def test_batch_duration_stops_mid_epoch(loader: DataLoader) -> None:
    log = EventLog()
    trainer = Trainer(mlp(), loader, "6ba", callbacks=[log], **quiet())
    trainer.fit()
    assert trainer.state.timestamp.batch_count == 6
    assert [count for name, count in log.events if name == "epoch_end"] == [4]


def test_schedulers_step_per_batch_or_per_epoch(loader: DataLoader) -> None:
    for every_batch, expected_steps in ((True, 8), (False, 2)):
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        Trainer(
            model, loader, "2ep", optimizers=optimizer, schedulers=scheduler, step_schedulers_every_batch=every_batch, **quiet()
        ).fit()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5**expected_steps)


def test_samples_and_tokens_are_counted() -> None:
    tokens = torch.randint(0, 10, (20, 7))
    loader = DataLoader(TensorDataset(tokens, tokens), batch_size=8)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10))
    trainer = Trainer(
        model, loader, "1ep", loss_fn=lambda out, y: torch.nn.functional.cross_entropy(out.transpose(1, 2), y), **quiet()
    )
    trainer.fit()
    assert trainer.state.timestamp.sample_count == 20 and trainer.state.timestamp.token_count == 140
    # 7 tokens a sample: 168 tokens are 24 samples, reached in the first batch of the second epoch.
    by_tokens = Trainer(model, loader, "168tok", loss_fn=trainer.loss_fn, **quiet())
    by_tokens.fit()
    assert by_tokens.state.timestamp.batch_count == 4 and by_tokens.state.timestamp.token_count == (8 + 8 + 4 + 8) * 7


def test_metrics_go_to_a_jsonl_file(tmp_path, loader: DataLoader) -> None:  # type: ignore[no-untyped-def]
    Trainer(mlp(), loader, "2ep", eval_dataloader=loader, run_dir=tmp_path, log_interval="2ba", progress_bar=False).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train/loss" in r] == [2, 4, 6, 8]
    assert [r["step"] for r in records if "eval/accuracy" in r] == [4, 8]


# Bad input: each error names the argument and the value, before any training step.


def test_rejects_a_model_without_parameters(loader: DataLoader) -> None:
    with pytest.raises(ValueError, match="ReLU has no parameters"):
        Trainer(torch.nn.ReLU(), loader, "1ep", **quiet())


def test_rejects_an_empty_dataloader() -> None:
    empty = DataLoader(TensorDataset(torch.zeros(3, 4), torch.zeros(3)), batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match="train_dataloader is empty"):
        Trainer(mlp(), empty, "1ep", **quiet())


def test_rejects_an_optimizer_over_other_parameters(loader: DataLoader) -> None:
    other = mlp()
    with pytest.raises(ValueError, match=r"optimizers\[0\] \(SGD\) holds 4 tensor\(s\) that are not parameters"):
        Trainer(mlp(), loader, "1ep", optimizers=torch.optim.SGD(other.parameters(), lr=0.1), **quiet())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_duration": "1dur"}, "max_duration cannot be in 'dur'"),
        ({"max_duration": "1.5ep"}, r"max_duration: invalid time string '1\.5ep'"),
        ({"max_duration": "2eps"}, r"max_duration: invalid time string '2eps'"),
        ({"eval_interval": "3x"}, r"eval_interval: invalid time string '3x'"),
        ({"grad_accum": 0}, "grad_accum must be an int >= 1"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"device": "tpu"}, "device must be"),
    ],
)
def test_rejects_bad_arguments(loader: DataLoader, kwargs: dict[str, object], message: str) -> None:
    arguments = {"max_duration": "1ep", **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        Trainer(mlp(), loader, **quiet(**arguments))  # type: ignore[arg-type]


def test_rejects_a_loss_that_is_not_a_scalar(loader: DataLoader) -> None:
    model = mlp()
    before = copy.deepcopy(model.state_dict())
    no_reduction = lambda out, y: torch.nn.functional.cross_entropy(out, y, reduction="none")  # noqa: E731
    with pytest.raises(ValueError, match=r"loss must be a scalar tensor, got \(16,\)"):
        Trainer(model, loader, "1ep", loss_fn=no_reduction, **quiet()).fit()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name])  # nothing was stepped


def test_bf16_autocast_trains_on_cpu(loader: DataLoader) -> None:
    model = mlp()
    trainer = Trainer(model, loader, "1ep", precision="bf16", eval_dataloader=loader, **quiet())
    trainer.fit()
    assert model[0].weight.dtype == torch.float32
    assert 0.0 <= float(trainer.state.eval_metrics["eval"]["accuracy"].compute()) <= 1.0
