"""The Trainer's Composer arguments, each against a hand-computed expectation.

The data: 64 samples in batches of 16, so an epoch is 4 batches (``make_loader``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa import Callback, State, Time, Trainer
from composer_swa.checkpoint import CheckpointError, read_checkpoint
from composer_swa.loggers import ConsoleLogger, InMemoryLogger, Logger
from composer_swa.trainer.unsupported import UnsupportedArgumentError
from tests.helpers import make_loader, mlp


class Timeline(Callback):
    """When optimizer steps, evaluations and eval batches happened, as (epoch, batch) counts."""

    def __init__(self) -> None:
        self.steps = 0
        self.evaluations: list[tuple[int, int]] = []
        self.eval_batches = 0

    def after_train_batch(self, state: State, logger: Logger) -> None:
        self.steps += 1

    def eval_end(self, state: State, logger: Logger) -> None:
        self.evaluations.append((state.timestamp.epoch_count, state.timestamp.batch_count))

    def eval_batch_end(self, state: State, logger: Logger) -> None:
        self.eval_batches += 1


def run(**kwargs: Any) -> tuple[Trainer, Timeline]:
    timeline = Timeline()
    arguments = {"model": mlp(), "train_dataloader": make_loader(), "progress_bar": False, "callbacks": timeline} | kwargs
    trainer = Trainer(**arguments)
    trainer.fit()
    return trainer, timeline


def test_an_int_max_duration_counts_epochs() -> None:
    trainer, timeline = run(max_duration=2)
    assert timeline.steps == 8 and trainer.state.timestamp.epoch_count == 2


@pytest.mark.parametrize(
    ("eval_interval", "expected"),
    [
        (2, [(2, 8), (4, 16), (5, 20)]),  # every 2 epochs, and at the end of fit
        ("6ba", [(1, 6), (2, 12), (4, 18), (5, 20)]),  # at BATCH_END, before batch 12 closes epoch 3
        (1, [(1, 4), (2, 8), (3, 12), (4, 16), (5, 20)]),  # Composer's default
        (0, []),  # off, also at the end of fit
        ("0ba", []),
        ("0ep", []),
    ],
)
def test_eval_interval_as_composer_reads_it(eval_interval: Any, expected: list[tuple[int, int]]) -> None:
    _, timeline = run(max_duration=5, eval_dataloader=make_loader(), eval_interval=eval_interval)
    assert timeline.evaluations == expected


def test_an_int_save_interval_counts_epochs_and_latest_links_the_newest(tmp_path: Path) -> None:
    run(max_duration=3, save_folder=tmp_path, save_interval=2)
    assert sorted(path.name for path in tmp_path.glob("*.pt")) == ["ep2-ba8-rank0.pt", "ep3-ba12-rank0.pt", "latest-rank0.pt"]
    assert os.readlink(tmp_path / "latest-rank0.pt") == "ep3-ba12-rank0.pt"
    assert read_checkpoint(tmp_path / "latest-rank0.pt")["state"]["timestamp"]["batch_count"] == 12


def test_save_interval_0_saves_no_checkpoint(tmp_path: Path) -> None:
    run(max_duration=2, save_folder=tmp_path, save_interval=0)
    assert list(tmp_path.glob("*.pt")) == [] and (tmp_path / "final").is_dir()


def test_run_name_formats_the_folder_and_the_file_names_and_autoresume_finds_them(tmp_path: Path) -> None:
    names = {"save_folder": str(tmp_path / "{run_name}" / "ck"), "save_filename": "{run_name}-b{batch}.pt"}
    run(max_duration="6ba", run_name="exp1", save_interval="3ba", save_latest_filename=None, **names)
    folder = tmp_path / "exp1" / "ck"
    assert sorted(path.name for path in folder.glob("*.pt")) == ["exp1-b3.pt", "exp1-b6.pt"]
    resumed, timeline = run(max_duration="8ba", run_name="exp1", save_interval="3ba", autoresume=True, **names)
    assert timeline.steps == 2 and resumed.checkpointer.notes[0].startswith(f"resumed from {folder / 'exp1-b6.pt'} at")


def test_a_generated_run_name_names_the_folder(tmp_path: Path) -> None:
    trainer, _ = run(max_duration="1ba", save_folder=str(tmp_path / "{run_name}"))
    assert re.fullmatch(r"\d+-[a-z]+-[a-z]+", trainer.state.run_name or "")
    assert (tmp_path / trainer.state.run_name / "ep0-ba1-rank0.pt").is_file()


def test_autoresume_with_a_generated_run_name_in_the_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"autoresume=True with \{run_name\} .* needs run_name="):
        Trainer(model=mlp(), train_dataloader=make_loader(), max_duration=1, save_folder=str(tmp_path / "{run_name}"),
                autoresume=True)  # fmt: skip


def test_save_overwrite(tmp_path: Path) -> None:
    run(max_duration=2, save_folder=tmp_path)
    with pytest.raises(CheckpointError, match=r"already holds checkpoints .* save_overwrite=True to replace them"):
        run(max_duration=1, save_folder=tmp_path)
    run(max_duration=1, save_folder=tmp_path, save_overwrite=True)
    assert sorted(path.name for path in tmp_path.glob("*.pt")) == ["ep1-ba4-rank0.pt", "latest-rank0.pt"]
    assert os.readlink(tmp_path / "latest-rank0.pt") == "ep1-ba4-rank0.pt"


def test_fit_with_reset_time_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    trainer, _ = run(max_duration=2, save_folder=tmp_path)
    with pytest.raises(CheckpointError, match="may be overwritten by a checkpoint of this fit"):
        trainer.fit(reset_time=True)


class SizeRecorder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 3)
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        return self.linear(x)


def test_device_train_microbatch_size_splits_as_composer_and_keeps_the_gradient() -> None:
    data = TensorDataset(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)), torch.arange(10) % 3)
    split, whole = SizeRecorder(), SizeRecorder()
    for model, kwargs in ((split, {"device_train_microbatch_size": 4}), (whole, {})):
        Trainer(model=model, train_dataloader=DataLoader(data, batch_size=10), max_duration="1ba", progress_bar=False,
                **kwargs).fit()  # fmt: skip
    assert split.sizes == [4, 4, 2] and whole.sizes == [10]
    torch.testing.assert_close(split.linear.weight, whole.linear.weight, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device_train_microbatch_size": "auto"}, "device_train_microbatch_size='auto' is not supported: .*pass an int"),
        ({"device_train_microbatch_size": 0.5}, "device_train_microbatch_size must be an int >= 1"),
        ({"device_train_microbatch_size": 4, "grad_accum": 2}, "pass device_train_microbatch_size=4 or grad_accum=2, not both"),
        ({"precision": "amp_fp16"}, "precision='amp_fp16' needs a CUDA device"),
        ({"precision": "amp_fp8"}, "precision='amp_fp8' needs NVIDIA Transformer Engine"),
        ({"device": "tpu"}, "device must be 'cpu', 'gpu', 'cuda', 'cuda:N', 'mps' or a torch.device, got 'tpu'"),
        ({"eval_interval": lambda state, event: True}, "eval_interval as a callable .* is not supported"),
        ({"save_folder": "s3://bucket/run"}, "save_folder='s3://bucket/run' is a URI"),
        ({"train_subset_num_batches": 0}, "train_subset_num_batches must be -1 .* got 0"),
        ({"save_filename": "ep{epoch}.pt", "save_folder": "x"}, r"save_filename='ep\{epoch\}.pt' must hold \{batch\}"),
        ({"profiler": object()}, "Trainer does not take Composer's argument 'profiler': wrap fit"),
        ({"max_duraton": 2}, "Trainer got an unexpected argument 'max_duraton'; did you mean 'max_duration'"),
    ],
)
def test_refused_arguments_say_why(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Trainer(**{"model": mlp(), "train_dataloader": make_loader(), "max_duration": 1} | kwargs)


def test_unsupported_arguments_of_fit_and_eval_are_refused() -> None:
    trainer = Trainer(model=mlp(), train_dataloader=make_loader(), max_duration=1, progress_bar=False)
    with pytest.raises(UnsupportedArgumentError, match=r"Trainer\.fit does not take Composer's argument 'schedulers'"):
        trainer.fit(schedulers=[])
    with pytest.raises(UnsupportedArgumentError, match=r"Trainer\.eval got an unexpected argument 'dataloader'"):
        trainer.eval(dataloader=make_loader())


def test_precision_names_and_aliases_and_devices() -> None:
    for name in ("bf16", "amp_bf16"):
        trainer = Trainer(model=mlp(), train_dataloader=make_loader(), max_duration=1, precision=name, device="cpu")
        assert trainer.state.precision == "amp_bf16"
    assert Trainer(model=mlp(), train_dataloader=make_loader(), device=torch.device("cpu")).state.precision == "fp32"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='gpu' was asked for, but CUDA is not available"):
            Trainer(model=mlp(), train_dataloader=make_loader(), device="gpu")


def test_algorithms_callbacks_and_loggers_take_none_one_or_a_list() -> None:
    memory = InMemoryLogger()
    one, two = Timeline(), Timeline()
    trainer = Trainer(model=mlp(), train_dataloader=make_loader(), max_duration=1, algorithms=None, callbacks=one,
                      loggers=memory, eval_dataloader=make_loader(), progress_bar=False)  # fmt: skip
    trainer.fit()
    assert trainer.state.algorithms == [] and trainer.state.callbacks == [one] and trainer.logger.destinations == [memory]
    assert [step for step, _ in memory.data["eval/loss"]] == [4]
    Trainer(model=mlp(), train_dataloader=make_loader(), max_duration=1, callbacks=[one, two], progress_bar=False).fit()
    assert two.steps == 4


def test_subsets_cut_epochs_and_evaluations() -> None:
    trainer, timeline = run(max_duration=3, train_subset_num_batches=2, eval_dataloader=make_loader(), eval_subset_num_batches=1)
    assert timeline.steps == 6 and trainer.state.timestamp.epoch_count == 3
    assert timeline.evaluations == [(1, 2), (2, 4), (3, 6)] and timeline.eval_batches == 3


def test_log_to_console_prints_every_console_log_interval(capsys: pytest.CaptureFixture[str]) -> None:
    run(max_duration="4ba")
    assert capsys.readouterr().out == ""  # Composer's default: log_to_console=False
    trainer, _ = run(max_duration="4ba", log_to_console=True, console_log_interval="2ba", log_interval="1000ba")
    printed = [line.split("]")[0] for line in capsys.readouterr().out.splitlines() if "train/loss" in line]
    assert printed == ["[batch 2", "[batch 4"] and isinstance(trainer.logger.destinations[0], ConsoleLogger)


def test_fit_duration_and_reset_time_as_composers_docstring() -> None:
    """Composer's ``Trainer.fit`` docstring example, step by step (4 batches an epoch)."""
    trainer = Trainer(model=mlp(), train_dataloader=make_loader(), max_duration="1ep", progress_bar=False)
    trainer.fit()
    assert trainer.state.timestamp.epoch_count == 1
    trainer.fit(reset_time=True)
    assert trainer.state.timestamp.epoch_count == 1 and trainer.state.timestamp.batch_count == 4
    trainer.fit(duration="1ep")
    assert trainer.state.timestamp.epoch_count == 2
    trainer.fit(duration="1ba")
    assert trainer.state.timestamp.epoch_count == 2 and trainer.state.timestamp.batch_in_epoch == 1
    trainer.fit(reset_time=True, duration="3ep")
    assert trainer.state.timestamp.epoch_count == 3 and trainer.state.timestamp.batch_count == 12


def test_a_later_fit_without_duration_is_refused() -> None:
    trainer = Trainer(model=mlp(), train_dataloader=make_loader(), max_duration=1, progress_bar=False)
    trainer.fit()
    with pytest.raises(ValueError, match="fit\\(\\) already trained this run to 1ep; pass duration="):
        trainer.fit()


def test_fit_takes_the_data_and_the_duration_and_goes_on_with_the_epoch_in_order() -> None:
    seen: list[float] = []

    class Batches(Callback):
        def batch_start(self, state: State, logger: Logger) -> None:
            seen.append(float(state.batch[0][0, 0]))

    loader = make_loader()
    trainer = Trainer(model=mlp(), callbacks=Batches(), progress_bar=False)
    trainer.fit(train_dataloader=loader, duration="3ba")
    trainer.fit(duration="1ba")  # the 4th batch of the same epoch, from the same iterator
    assert trainer.state.timestamp.epoch_count == 1 and trainer.state.max_duration == Time(4, "ba")
    trainer.fit(duration=1)  # an int counts epochs: 1 completed + 1
    assert trainer.state.max_duration == Time(2, "ep") and trainer.state.timestamp.batch_count == 8
    assert seen == [float(x[0, 0]) for x, _ in loader] * 2


def test_eval_takes_its_own_dataloader_for_that_call_only() -> None:
    trainer = Trainer(model=mlp(), train_dataloader=make_loader(), max_duration=1, progress_bar=False)
    trainer.fit()
    other = make_loader(samples=32, seed=5)
    metrics = trainer.eval(eval_dataloader=other)
    with torch.no_grad():
        expected = sum(torch.nn.functional.cross_entropy(trainer.state.model(x), y, reduction="sum") for x, y in other) / 32
    assert metrics["eval/loss"] == pytest.approx(float(expected), rel=1e-6) and trainer.state.eval_dataloader is None
    with pytest.raises(ValueError, match="needs an eval_dataloader"):
        trainer.eval()


def test_a_paused_epoch_of_a_shuffling_loader_with_workers_goes_on_as_one_fit_would(tmp_path: Path) -> None:
    def batches(*durations: str, folder: Path) -> list[float]:
        seen: list[float] = []

        class Batches(Callback):
            def batch_start(self, state: State, logger: Logger) -> None:
                seen.append(float(state.batch[0][0, 0]))

        torch.manual_seed(0)
        loader = DataLoader(make_loader().dataset, batch_size=16, shuffle=True, num_workers=2)
        trainer = Trainer(model=mlp(), train_dataloader=loader, callbacks=Batches(), progress_bar=False, save_folder=folder)
        for duration in durations:
            trainer.fit(duration=duration)  # the save_folder's lock is free again between the calls
        return seen

    assert batches("3ba", "2ba", folder=tmp_path / "paused") == batches("5ba", folder=tmp_path / "whole")
