"""Constructor arguments of every algorithm: a wrong type or value is a ValueError (or, for times, a TypeError)
naming the argument, never a raw TypeError from a comparison; SWA's swa_lr may give one LR per param group."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import TypeAdapter

from composer_swa import EMA, LAWA, SWA, SWATS, Callback, State, Trainer
from composer_swa.loggers import Logger
from tests.helpers import make_loader, mlp, quiet


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SWA(schedule_swa_lr=True, swa_lr="0.1"), r"swa_lr must be > 0: a finite number, a list of them .*got '0.1'"),
        (lambda: SWA(schedule_swa_lr=True, swa_lr=[0.2, "1.0"]), r"swa_lr must be .*got \[0.2, '1.0'\]"),
        (lambda: SWA(schedule_swa_lr=True, swa_lr=[]), r"swa_lr must be .*got \[\]"),
        (lambda: SWA(schedule_swa_lr=True, swa_lr=float("inf")), r"swa_lr must be .*got inf"),
        (lambda: SWA(cyclic_lr=0.1), r"cyclic_lr must be \(high, low\) .*got 0.1"),
        (lambda: SWA(cyclic_lr=("0.1", "0.01")), r"cyclic_lr must be \(high, low\) .*got \('0.1', '0.01'\)"),
        (lambda: SWA(schedule_swa_lr="no"), "schedule_swa_lr must be True, False or 'paper', got 'no'"),
        (lambda: SWA(bn_update=None), "bn_update must be True or False, got None"),
        (lambda: SWA(offload="yes"), "offload must be True or False, got 'yes'"),
        (lambda: EMA(half_life=None, smoothing=None), "give exactly one of half_life and smoothing, got half_life=None"),
        (lambda: EMA(half_life=None), "give exactly one of half_life and smoothing"),
        (lambda: EMA(smoothing="0.9"), r"smoothing must be a number in \(0, 1\), got '0.9'"),
        (lambda: EMA(warmup_gamma="10"), "warmup_gamma must be > 0 .*got '10'"),
        (lambda: EMA(warmup_power=None), "warmup_power must be > 0, got None"),
        (lambda: EMA(eval_with_average=1), "eval_with_average must be True or False, got 1"),
        (lambda: LAWA(replace_at_fit_end="false"), "replace_at_fit_end must be True or False, got 'false'"),
        (lambda: SWATS(switch_tolerance=float("nan")), "switch_tolerance must be a number > 0, got nan"),
        (lambda: SWATS(switch_tolerance="1e-9"), "switch_tolerance must be a number > 0, got '1e-9'"),
    ],
)
def test_a_bad_argument_is_a_value_error_naming_it(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_ema_defaults_and_smoothing_alone_still_construct() -> None:
    assert EMA().half_life is not None and str(EMA().half_life) == "1000ba"
    assert EMA(smoothing=0.9).smoothing == 0.9 and EMA(smoothing=0.9).half_life is None
    with pytest.raises(ValueError, match="exactly one"):
        EMA(half_life="1000ba", smoothing=0.9)  # an explicit half_life, even the default's value, conflicts


def test_ema_from_a_config_takes_smoothing_alone_and_refuses_neither() -> None:
    """The config passes every default to the constructor: the default half_life must still give way to smoothing."""
    from composer_swa.config.build import _kwargs
    from composer_swa.config.schema import Algorithm

    adapter: TypeAdapter[Any] = TypeAdapter(Algorithm)
    assert EMA(**_kwargs(adapter.validate_python({"name": "ema", "smoothing": 0.9}))).smoothing == 0.9
    with pytest.raises(ValueError, match="exactly one of half_life and smoothing"):
        adapter.validate_python({"name": "ema", "half_life": None})


class GroupLRs(Callback):
    """Each param group's LR at every BATCH_START, by the batch count it completes."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}

    def batch_start(self, state: State, logger: Logger) -> None:
        self.lrs[state.timestamp.batch_count + 1] = [group["lr"] for group in state.optimizers[0].param_groups]


def two_group_run(swa: SWA) -> dict[int, list[float]]:
    model = mlp()
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 1.0}, {"params": model[2].parameters(), "lr": 0.5}])
    seen = GroupLRs()
    Trainer(model, make_loader(), "8ba", optimizers=optimizer, algorithms=[swa], callbacks=[seen], **quiet()).fit()
    return seen.lrs


def test_swa_lr_per_param_group_anneals_each_group_to_its_own_value() -> None:
    lrs = two_group_run(SWA(swa_start="4ba", update_interval="1ba", schedule_swa_lr=True, swa_lr=[0.2, 0.1], anneal_steps=2))
    assert [lrs[k] for k in (1, 2, 3, 4)] == [[1.0, 0.5]] * 4
    assert lrs[5] == pytest.approx([(1.0 + 0.2) / 2, (0.5 + 0.1) / 2])  # halfway, linear
    assert [lrs[k] for k in (6, 7, 8)] == [pytest.approx([0.2, 0.1])] * 3


def test_swa_lr_per_param_group_must_match_the_optimizers_groups() -> None:
    swa = SWA(swa_start="4ba", update_interval="1ba", schedule_swa_lr=True, swa_lr=[0.2, 0.1, 0.05])
    with pytest.raises(
        ValueError, match=r"swa_lr=\[0.2, 0.1, 0.05\] gives one LR per param group, but optimizer 0 \(SGD\) has 2"
    ):
        two_group_run(swa)
