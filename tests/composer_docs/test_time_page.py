"""Composer's time page (docs/source/trainer/time.rst) and the examples in ``composer.core.time``'s docstrings, ported.

Only the imports changed; the expected values are the ones Composer documents. What cannot run here:
the ``sec`` unit and timedelta strings (``"1h20m40s"``) measure wall-clock time, which composer_swa
does not schedule by, so they are refused with the list of units; ``iter`` (Composer's multi-iteration
runs) is refused with the units to use instead; ``DataSpec`` (a custom sample count) does not exist
here, so the sample counting is checked on the batch types the page lists. (``composer.core``'s names
are imported from ``composer_swa``, where they live in this branch.)
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_swa import Callback, State, Time, Timestamp, TimeUnit, Trainer
from composer_swa.loggers import Logger
from composer_swa.optim.base import convert_time, example_state
from tests.helpers import mlp, quiet


@pytest.mark.parametrize(
    ("text", "unit"),
    [("10ep", TimeUnit.EPOCH), ("100ba", TimeUnit.BATCH), ("2048sp", TimeUnit.SAMPLE), ("93874tok", TimeUnit.TOKEN),
     ("0.7dur", TimeUnit.DURATION)],
)  # fmt: skip
def test_the_units_table(text: str, unit: TimeUnit) -> None:
    time = Time.from_timestring(text)
    assert time.unit == unit and str(time) == text


@pytest.mark.parametrize("text", ["30sec", "1h20m40s", "3iter"])
def test_wall_clock_and_iteration_times_are_refused_with_the_units_to_use(text: str) -> None:
    with pytest.raises(ValueError, match="'ep', 'ba', 'sp', 'tok'"):
        Time.from_timestring(text)


def test_the_time_docstring_examples() -> None:
    assert Time(5, TimeUnit.EPOCH) == Time(5, "ep")
    assert Time(30_000, "tok").value == 30000
    assert Time(0.5, "dur").value == 0.5
    assert Time(1, TimeUnit.EPOCH) + Time(2, TimeUnit.EPOCH) == Time(3, TimeUnit.EPOCH)
    assert Time(2, TimeUnit.EPOCH) * 0.5 == Time(1, TimeUnit.EPOCH)
    assert Time(2, TimeUnit.EPOCH) * Time(0.5, TimeUnit.DURATION) == Time(1, TimeUnit.EPOCH)
    assert Time(4, TimeUnit.EPOCH) / Time(2, TimeUnit.EPOCH) == Time(2.0, TimeUnit.DURATION)
    assert Time(4, TimeUnit.EPOCH) / 2 == Time(2, TimeUnit.EPOCH)
    assert Time.from_timestring("5ep") == Time(5, TimeUnit.EPOCH)
    assert Time.from_timestring("3e4tok") == Time(30000, TimeUnit.TOKEN)
    assert Time.from_timestring("0.5dur") == Time(0.5, TimeUnit.DURATION)
    assert Time(5, TimeUnit.EPOCH).to_timestring() == "5ep"
    assert Time.from_input("5ep") == Time.from_input(5, TimeUnit.EPOCH) == Time(5, TimeUnit.EPOCH)
    assert Time.from_epoch(3) == Time(3, "ep") and Time.from_duration(0.5) == Time(0.5, "dur")


def test_arithmetic_needs_one_unit_as_composer_says() -> None:
    with pytest.raises(RuntimeError, match="units differ"):
        _ = Time(1, "ep") + Time(1, "ba")
    with pytest.raises(RuntimeError, match="one of the two must be in 'dur'"):
        _ = Time(2, "ep") * Time(3, "ba")
    assert Time(7, "ba") % Time(3, "ba") == Time(1, "ba") and Time(7, "ba") - 2 == Time(5, "ba")
    assert Time(5, "ba") < 7 and Time(5, "ba") == "5ba"


def test_dur_is_rounded_down_in_max_durations_unit() -> None:
    """The page's warning: max_duration = "7ep" and warmup = "0.2dur" is floor(7 * 0.2) = 1 epoch (one batch an epoch)."""
    assert convert_time("0.2dur", example_state(0, "7ep", batches_per_epoch=1)) == Time(1, "ba")
    assert convert_time("0.2dur", example_state(0, "700ba")) == Time(140, "ba")


class TimeLog(Callback):
    """What an algorithm or callback reads: state.timestamp after each batch and epoch."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int, int, int]] = []
        self.epochs: list[int] = []
        self.every_third: list[int] = []
        self.last_fifth: list[int] = []

    def batch_end(self, state: State, logger: Logger) -> None:
        stamp = state.timestamp
        self.batches.append((stamp.epoch.value, stamp.batch.value, stamp.sample.value, stamp.batch_in_epoch))
        if stamp.batch % 3 == 0:  # "activate once every n batches"
            self.every_third.append(stamp.batch.value)
        if stamp >= Time(state.to_batches("0.8dur"), "ba"):  # "during the last 20% of training"
            self.last_fifth.append(stamp.get(TimeUnit.BATCH).value)

    def epoch_end(self, state: State, logger: Logger) -> None:
        assert state.timestamp >= Time(len(self.epochs) + 1, "ep") and state.timestamp < "100ep"
        self.epochs.append(state.timestamp.epoch.value)


@pytest.mark.parametrize("batch_type", ["tuple", "dict"])
def test_the_timestamp_counts_epochs_batches_and_samples(batch_type: str) -> None:
    """Samples come from the batch's first dimension, for a tuple or a dict (a bare tensor batch, the page's
    third rule, is no training batch for a plain module here: it has no targets)."""
    inputs, targets = torch.randn(20, 4), torch.randint(0, 3, (20,))

    def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> object:
        x, y = torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])
        return (x, y) if batch_type == "tuple" else {"x": x, "y": y}

    def loss(outputs: torch.Tensor, batch: object) -> torch.Tensor:
        return outputs.square().mean()

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            return self.net(x)

    log = TimeLog()
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=8, collate_fn=collate)  # 8, 8, 4 samples
    Trainer(Model(), loader, "2ep", loss_fn=loss, callbacks=[log], **quiet()).fit()
    assert log.batches == [(0, 1, 8, 1), (0, 2, 16, 2), (0, 3, 20, 3), (1, 4, 28, 1), (1, 5, 36, 2), (1, 6, 40, 3)]
    assert log.epochs == [1, 2]
    assert log.every_third == [3, 6]
    assert log.last_fifth == [5, 6]  # 0.8 of 6 batches is batch 5 (resolved up)


def test_a_timestamp_compares_with_a_time_in_any_counted_unit() -> None:
    stamp = Timestamp(epoch=2, batch=250, sample=8000, token=0)
    assert stamp.get("ep") == Time(2, "ep") and stamp.get(TimeUnit.SAMPLE) == Time(8000, "sp")
    assert stamp >= Time(2, "ep") and stamp < Time(3, "ep") and stamp > "249ba" and stamp == "8000sp"
    assert Time(2, "ep") <= stamp and not Time(251, "ba") <= stamp  # Time first: Python asks the Timestamp
    with pytest.raises(ValueError, match="needs the run's length"):
        _ = stamp < Time(0.5, "dur")
