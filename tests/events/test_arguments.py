"""A resumed run whose algorithm arguments differ from the checkpoint's: a warning naming each change, or a
ValueError for a change that would make the saved average wrong. Resumed through our Trainer's checkpoints."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path

import pytest
import torch

from composer_swa import EMA, LAWA, SWA, SWATS, Algorithm, Callback, State, Trainer
from composer_swa.checkpoint import TrainingPreempted, list_checkpoints, read_checkpoint
from composer_swa.events.arguments import plain_argument
from composer_swa.loggers import Logger
from tests.algorithms.helpers import train_plain_loop
from tests.checkpoint.resume_run import SignalSelf, build
from tests.helpers import mlp


def trainer_with(folder: Path, algorithms: list[Algorithm], stop_at: int | None = None, optimizer: str = "sgd") -> Trainer:
    """resume_run's 4-epoch run of 48 batches (checkpoints every 5), with these algorithms; SIGTERM after ``stop_at``."""
    callbacks = [SignalSelf(stop_at, signal.SIGTERM)] if stop_at is not None else []
    trainer = build(folder, "swats" if optimizer == "adam" else "sgd", callbacks=callbacks, autoresume=stop_at is None)
    trainer.state.algorithms = algorithms
    trainer.engine.refresh()
    return trainer


def stop_after(folder: Path, algorithms: list[Algorithm], batch: int, optimizer: str = "sgd") -> None:
    with pytest.raises(TrainingPreempted):
        trainer_with(folder, algorithms, stop_at=batch, optimizer=optimizer).fit()
    assert list_checkpoints(folder)[-1].name.endswith(f"-ba{batch}-rank0.pt")


def swa(**changes: object) -> SWA:
    arguments: dict[str, object] = {
        "swa_start": "0.25dur", "swa_end": "0.75dur", "update_interval": "2ba", "swa_lr": 0.02, "schedule_swa_lr": True,
    }  # fmt: skip
    return SWA(**{**arguments, **changes})  # type: ignore[arg-type]


class StartLR(Callback):
    """The LR at each BATCH_START, by the batch count it completes."""

    def __init__(self) -> None:
        self.lrs: dict[int, float] = {}

    def batch_start(self, state: State, logger: Logger) -> None:
        self.lrs[state.timestamp.batch_count + 1] = state.optimizers[0].param_groups[0]["lr"]


def test_the_checkpoint_stores_the_arguments_as_plain_values(tmp_path: Path) -> None:
    stop_after(tmp_path, [swa(), EMA(half_life="4ba", replace_at_fit_end=False)], 19)
    saved = read_checkpoint(list_checkpoints(tmp_path)[-1])["state"]["algorithms"]  # read with weights_only=True
    assert saved["SWA"]["arguments"] == {
        "swa_start": "0.25dur", "swa_end": "0.75dur", "update_interval": "2ba", "schedule_swa_lr": True,
        "anneal_strategy": "linear", "anneal_steps": 10, "swa_lr": 0.02, "bn_update": True, "cyclic_lr": None,
        "eval_with_average": False, "offload": False, "use_buffers": True,
    }  # fmt: skip
    assert saved["EMA"]["arguments"]["half_life"] == "4ba"
    assert saved["EMA"]["arguments"]["smoothing"] == 2 ** (-1 / 4)


def test_a_changed_lr_argument_is_a_warning_naming_it_and_the_new_value_applies(tmp_path: Path) -> None:
    stop_after(tmp_path, [swa()], 19)
    resumed, lrs = swa(swa_lr=0.05, anneal_steps=4), StartLR()
    trainer = trainer_with(tmp_path, [resumed])
    trainer.state.callbacks.append(lrs)
    trainer.engine.refresh()
    with pytest.warns(UserWarning, match=r"SWA: this run changes .*anneal_steps 10 → 4, swa_lr 0.02 → 0.05\)") as caught:
        trainer.fit()
    assert len([w for w in caught if "changes arguments" in str(w.message)]) == 1
    assert resumed.n_averaged == 13  # batches 12, 14, ..., 36: the window held
    # From batch 20 on, 8 steps after swa_start with anneal_steps=4: the new swa_lr, until the swap at batch 36.
    assert [lrs.lrs[batch] for batch in range(20, 37)] == pytest.approx([0.05] * 17)


def test_the_same_arguments_resume_without_a_warning(tmp_path: Path) -> None:
    stop_after(tmp_path, [swa(), LAWA(window=3, update_interval="4ba")], 19)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer_with(tmp_path, [swa(), LAWA(window=3, update_interval="4ba")]).fit()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"swa_start": "0.5dur"}, r"swa_start '0.25dur' → '0.5dur'.*swa_start cannot change now: the saved average holds 4 "
         r"snapshots.*resume with swa_start='0.25dur'"),
        ({"update_interval": "3ba"}, r"update_interval '2ba' → '3ba'.*resume with update_interval='2ba'"),
        ({"schedule_swa_lr": False}, r"schedule_swa_lr True → False.*the LR to restore at swa_end"),
    ],
)  # fmt: skip
def test_swa_refuses_a_change_to_its_grid_once_averaging_began(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    stop_after(tmp_path, [swa()], 19)  # snapshots after batches 12, 14, 16, 18
    with pytest.raises(ValueError, match=message):
        trainer_with(tmp_path, [swa(**changes)]).fit()


def test_swa_refuses_another_swa_end_once_the_average_was_swapped_in(tmp_path: Path) -> None:
    stop_after(tmp_path, [swa()], 40)  # swapped in at batch 36
    with pytest.raises(ValueError, match=r"swa_end '0.75dur' → '0.9dur'.*already replaced the weights"):
        trainer_with(tmp_path, [swa(swa_end="0.9dur")]).fit()


def test_an_earlier_swa_end_already_passed_is_refused_at_fit_start(tmp_path: Path) -> None:
    stop_after(tmp_path, [swa()], 19)
    with (
        pytest.warns(UserWarning, match=r"swa_end '0.75dur' → '14ba'"),
        pytest.raises(ValueError, match=r"swa_end='14ba' resolves to batch 14, but the run resumes at batch 19"),
    ):
        trainer_with(tmp_path, [swa(swa_end="14ba")]).fit()


def test_ema_refuses_another_half_life_once_it_holds_an_average(tmp_path: Path) -> None:
    stop_after(tmp_path, [EMA(half_life="4ba")], 19)
    message = r"EMA: .*half_life '4ba' → '8ba', smoothing 0.84\d* → 0.917\d*\), but smoothing cannot change now"
    with pytest.raises(ValueError, match=message):
        trainer_with(tmp_path, [EMA(half_life="8ba")]).fit()


def test_ema_takes_the_same_decay_by_another_spelling_with_a_warning(tmp_path: Path) -> None:
    stop_after(tmp_path, [EMA(half_life="4ba")], 19)
    same = EMA(smoothing=2 ** (-1 / 4), update_interval="1ba", eval_with_average=False)
    with pytest.warns(UserWarning, match=r"half_life '4ba' → None, eval_with_average True → False\)"):
        trainer_with(tmp_path, [same]).fit()
    assert same.n_updates == 48


def test_lawa_refuses_another_window_once_it_holds_snapshots(tmp_path: Path) -> None:
    stop_after(tmp_path, [LAWA(window=3, update_interval="4ba")], 19)  # snapshots after batches 8, 12, 16
    with pytest.raises(ValueError, match=r"LAWA: .*window 3 → 4.*batches \[8, 12, 16\].*resume with window=3"):
        trainer_with(tmp_path, [LAWA(window=4, update_interval="4ba")]).fit()


def test_swats_takes_another_switch_at_with_a_warning(tmp_path: Path) -> None:
    stop_after(tmp_path, [SWATS(switch_at="30ba")], 10, optimizer="adam")
    resumed = SWATS(switch_at="20ba")
    with pytest.warns(UserWarning, match=r"SWATS: this run changes .*switch_at '30ba' → '20ba'"):
        trainer_with(tmp_path, [resumed], optimizer="adam").fit()
    assert resumed.switched_at_batch == 20


def test_a_checkpoint_without_stored_arguments_still_loads_and_says_it_cannot_check() -> None:
    _, saved = train_plain_loop(mlp(), torch.optim.SGD(mlp().parameters(), lr=0.1), [EMA(half_life="4ba")], stop_at=5)
    assert saved is not None
    del saved["algorithms"]["EMA"]["arguments"]  # as written before arguments were stored
    model = mlp()
    with pytest.warns(UserWarning, match="EMA: the checkpoint stores no arguments .* cannot be checked"):
        train_plain_loop(model, torch.optim.SGD(model.parameters(), lr=0.1), [EMA(half_life="8ba")], saved=saved)


def test_plain_argument_keeps_what_weights_only_loading_accepts() -> None:
    assert plain_argument({"a": (1, 2.5, None, True)}) == {"a": [1, 2.5, None, True]}
    assert plain_argument(torch.float32) == "torch.float32"
