"""AlgorithmRunner in a plain PyTorch loop: the same result as our Trainer, and a resume through torch.save."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from composer_swa import EMA, SWATS, Callback, Event, State, Trainer
from composer_swa.integrations import AlgorithmRunner
from composer_swa.loggers import Logger

from .reference import (
    BATCH_SIZE,
    EPOCHS,
    STEPS_PER_EPOCH,
    assert_batch_norm_recomputed,
    assert_same_weights,
    initial_model,
    optimizer_and_schedule,
    our_trainer_run,
    swa,
    tuple_loader,
)


def plain_loop(algorithms: list[Any], stop_after: int | None = None, resume: Path | None = None, save: Path | None = None) -> Any:
    """The loop README shows, able to stop after ``stop_after`` steps (saving to ``save``) and to resume."""
    model = initial_model()
    optimizer, schedule = optimizer_and_schedule(model)
    loader = tuple_loader()
    runner = AlgorithmRunner(algorithms, model, optimizer, loader, max_duration=f"{EPOCHS}ep", loggers=[])
    if resume is not None:
        saved = torch.load(resume, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        runner.load_state_dict(saved["algorithms"])
    runner.fit_start()
    while not runner.is_finished:
        done_in_epoch = runner.state.timestamp.batch_in_epoch
        for x, y in itertools.islice(loader, done_in_epoch, None):
            runner.batch_start()
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            if not runner.owns_lr:
                schedule.step()
            runner.batch_end(samples=len(x))
            if runner.state.timestamp.batch_count == stop_after:
                assert save is not None
                payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}
                torch.save({**payload, "algorithms": runner.state_dict()}, save)
                return runner
        runner.epoch_end()
    runner.fit_end()
    return model


def test_plain_loop_ends_with_our_trainers_average_and_fresh_batch_norm_statistics() -> None:
    reference_model, (reference_swa,) = our_trainer_run()
    algorithm = swa()
    model = plain_loop([algorithm])
    assert algorithm.n_averaged == reference_swa.n_averaged == 6
    assert_same_weights(model, reference_model)
    assert_batch_norm_recomputed(model)


def test_state_survives_torch_save_and_a_weights_only_load(tmp_path: Path) -> None:
    def algorithms() -> list[Any]:
        return [swa(), EMA(half_life="4ba", replace_at_fit_end=False)]

    uninterrupted = algorithms()
    whole = plain_loop(uninterrupted)
    stopped = plain_loop(algorithms(), stop_after=12, save=tmp_path / "step12.pt")
    assert stopped.state.timestamp.batch_in_epoch == 12 - STEPS_PER_EPOCH  # mid-epoch, three snapshots in

    resumed = algorithms()
    model = plain_loop(resumed, resume=tmp_path / "step12.pt")
    assert resumed[0].n_averaged == uninterrupted[0].n_averaged == 6
    for before, after in zip(uninterrupted, resumed):
        assert_same_weights(after.averaged_weights() or {}, before.averaged_weights() or {})
    assert_same_weights(model, whole)


def test_epochs_close_with_their_last_batch_and_early_ends_are_reported() -> None:
    model = initial_model()
    optimizer, _ = optimizer_and_schedule(model)
    runner = AlgorithmRunner([], model, optimizer, tuple_loader(), max_duration=f"{EPOCHS}ep", loggers=[])
    runner.fit_start()
    for _ in range(STEPS_PER_EPOCH):
        runner.batch_end()
    runner.epoch_end()  # already closed by its last batch: a no-op
    stamp = runner.state.timestamp
    assert (stamp.epoch_count, stamp.batch_count, stamp.sample_count) == (1, STEPS_PER_EPOCH, 100)  # 6 × 16 + 4
    runner.batch_end()
    with pytest.raises(ValueError, match=r"ended an epoch after 1 optimizer steps, but an epoch has 7"):
        runner.epoch_end()

    # A run that ends mid-epoch leaves that epoch open, as our Trainer does.
    short = AlgorithmRunner([], model, optimizer, tuple_loader(), max_duration="10ba", loggers=[])
    short.fit_start()
    for _ in range(10):
        short.batch_end()
    short.epoch_end()
    assert short.is_finished and short.state.timestamp.epoch_count == 1


class Timeline(Callback):
    """Every event with the timestamp it sees: (event, batches, epochs, samples)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int, int]] = []

    def run_event(self, event: Event, state: State, logger: Logger) -> None:
        stamp = state.timestamp
        self.seen.append((event.value, stamp.batch_count, stamp.epoch_count, stamp.sample_count))


def expected_timeline(max_batches: int) -> list[tuple[str, int, int, int]]:
    """Written out by hand from Event's contract: 7 steps an epoch of 6 × 16 + 4 samples, no EPOCH_END mid-epoch."""
    sizes = [BATCH_SIZE] * (STEPS_PER_EPOCH - 1) + [4]
    events, samples = [("init", 0, 0, 0), ("fit_start", 0, 0, 0)], 0
    for batch in range(max_batches):
        epoch, in_epoch = divmod(batch, STEPS_PER_EPOCH)
        if in_epoch == 0:
            events.append(("epoch_start", batch, epoch, samples))
        events += [("batch_start", batch, epoch, samples), ("after_train_batch", batch, epoch, samples)]
        samples += sizes[in_epoch]
        events.append(("batch_end", batch + 1, epoch, samples))
        if in_epoch == STEPS_PER_EPOCH - 1:
            events.append(("epoch_end", batch + 1, epoch + 1, samples))
    return [*events, ("fit_end", max_batches, max_batches // STEPS_PER_EPOCH, samples)]


@pytest.mark.parametrize("max_duration", [f"{EPOCHS}ep", "10ba"])
def test_a_plain_loop_and_our_trainer_fire_the_same_events_at_the_same_times(max_duration: str) -> None:
    trainer_timeline = Timeline()
    model = initial_model()
    optimizer, _ = optimizer_and_schedule(model)
    trainer = Trainer(model, tuple_loader(), max_duration, optimizers=optimizer, callbacks=[trainer_timeline],
                      loggers=[], progress_bar=False)  # fmt: skip
    trainer.fit()

    loop_timeline = Timeline()
    model = initial_model()
    optimizer, _ = optimizer_and_schedule(model)
    runner = AlgorithmRunner([], model, optimizer, tuple_loader(), max_duration, callbacks=[loop_timeline], loggers=[])
    runner.fit_start()
    while not runner.is_finished:
        runner.epoch_start()
        for x, y in itertools.islice(tuple_loader(), STEPS_PER_EPOCH - runner.state.timestamp.batch_in_epoch):
            runner.batch_start()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            runner.after_train_batch()
            optimizer.step()
            optimizer.zero_grad()
            runner.batch_end(samples=len(x))
            if runner.is_finished:
                break
        runner.epoch_end()
    runner.fit_end()

    expected = expected_timeline(trainer.state.max_batches)
    only_ours = {"after_forward", "after_loss", "after_backward"}  # a plain loop could fire them too; this one does not
    assert [entry for entry in trainer_timeline.seen if entry[0] not in only_ours] == expected
    assert loop_timeline.seen == expected


def test_misuse_is_reported_with_the_fix() -> None:
    model = initial_model()
    optimizer, _ = optimizer_and_schedule(model)
    runner = AlgorithmRunner([swa()], model, optimizer, tuple_loader(), max_duration="1ep", loggers=[])
    with pytest.raises(RuntimeError, match=r"batch_end\(\) before fit_start\(\)"):
        runner.batch_end()
    runner.fit_start()
    with pytest.raises(RuntimeError, match=r"load_state_dict\(\) must come before fit_start\(\)"):
        runner.load_state_dict(runner.state_dict())
    with pytest.raises(ValueError, match="SWATS replaces the optimizer object"):
        AlgorithmRunner([SWATS()], model, optimizer, tuple_loader(), max_duration="1ep")
    with pytest.raises(TypeError, match=r"algorithms must hold composer_swa algorithms .* got 'SWA'"):
        AlgorithmRunner(["SWA"], model, optimizer, tuple_loader(), max_duration="1ep")  # type: ignore[list-item]


def test_the_core_never_imports_a_framework_and_a_missing_one_names_the_extra() -> None:
    script = """
import sys
import composer_swa, composer_swa.integrations
assert not {"transformers", "lightning", "accelerate"} & set(sys.modules), "a framework was imported"
sys.modules["transformers"] = None
sys.modules["lightning"] = None
for name, extra in (("HuggingFaceCallback", "hf"), ("LightningCallback", "lightning")):
    try:
        getattr(composer_swa.integrations, name)
    except ImportError as error:
        assert f"pip install 'composer_swa[{extra}]'" in str(error), error
    else:
        raise AssertionError(name + " imported without its framework")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
