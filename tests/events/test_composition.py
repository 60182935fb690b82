"""How algorithms compose: one holder per resource over any batch, and readers of the weights before replacers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch

from composer_swa import SWA, SWATS, Algorithm, AlgorithmConflictError, Engine, Event, Resource, State
from composer_swa.events import Tenure
from composer_swa.integrations.runner import check_algorithms
from composer_swa.loggers import Logger


class Logged(Algorithm):
    events: ClassVar[frozenset[Event]] = frozenset({Event.FIT_START, Event.BATCH_END, Event.FIT_END})

    def __init__(self, tag: str, log: list[str]) -> None:
        self.tag, self.log = tag, log

    def match(self, event: Event, state: State) -> bool:
        return True

    def apply(self, event: Event, state: State, logger: Any) -> None:
        self.log.append(f"{self.tag}:{event.value}")


class Replacer(Logged):
    replaces_weights_at: ClassVar[frozenset[Event]] = frozenset({Event.BATCH_END})


def make_state(algorithms: list[Algorithm], max_duration: str = "4ba") -> State:
    return State(model=torch.nn.Linear(2, 2), max_duration=max_duration, train_dataloader=[0, 1, 2, 3], algorithms=algorithms)


def test_a_replacer_runs_after_the_readers_at_its_events_only() -> None:
    log: list[str] = []
    engine = Engine(make_state([Replacer("replacer", log), Logged("reader", log), Replacer("second", log)]), Logger())
    for event in (Event.FIT_START, Event.BATCH_END, Event.FIT_END):
        engine.run_event(event)
    assert log == [
        "replacer:fit_start", "reader:fit_start", "second:fit_start",
        "reader:batch_end", "replacer:batch_end", "second:batch_end",
        "replacer:fit_end", "reader:fit_end", "second:fit_end",
    ]  # fmt: skip


def test_lr_holders_over_separate_batches_compose_and_overlapping_ones_name_the_fix() -> None:
    def check(first_end: str, second_start: str) -> None:
        first = SWA(swa_start="1ba", swa_end=first_end, update_interval="1ba", schedule_swa_lr=True)
        second = SWA(swa_start=second_start, swa_end="4ba", update_interval="1ba", schedule_swa_lr=True)
        Engine(make_state([first, second]), Logger()).run_event(Event.FIT_START)

    check(first_end="2ba", second_start="2ba")  # batches [1, 2) and [2, 4)
    with pytest.raises(AlgorithmConflictError) as error:
        check(first_end="3ba", second_start="2ba")
    assert str(error.value).splitlines() == [
        "SWA and SWA both take charge of 'lr' in this run: SWA until swa_end='3ba' (batch 3), SWA from "
        "swa_start='2ba' (batch 2); set swa_end no later than swa_start, or let only one of them schedule the "
        "learning rate (e.g. SWA(schedule_swa_lr=False))",
        # Their averaging windows overlap too: the first's swap at batch 3 would land in the second's average.
        "SWA and SWA both take charge of 'window_average' in this run: SWA until swa_end='3ba' (batch 3), SWA from "
        "swa_start='2ba' (batch 2); set swa_end no later than swa_start, or let their averaging windows not overlap; "
        "SWAG's mean is SWA's average, so a run with SWAG needs no SWA",
    ]


def test_swats_holds_the_lr_until_its_switch() -> None:
    state = make_state([SWATS(switch_at="3ba")])
    assert dict(SWATS(switch_at="3ba").owned_resources(state)) == {
        Resource.OPTIMIZER: Tenure(),
        Resource.LR: Tenure(stop=3, stop_by="switch_at"),
    }
    assert dict(SWATS().owned_resources(state)) == {Resource.OPTIMIZER: Tenure(), Resource.LR: Tenure()}


class Undeclared(Algorithm):
    events: ClassVar[frozenset[Event]] = frozenset({Event.FIT_START})

    def match(self, event: Event, state: State) -> bool:
        return False

    def apply(self, event: Event, state: State, logger: Any) -> None:
        pass

    def owned_resources(self, state: State) -> Mapping[Resource, Tenure]:
        return {Resource.FINAL_WEIGHTS: Tenure()}


def test_holding_a_resource_the_class_does_not_declare_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Undeclared takes charge of \['final_weights'\], which Undeclared.may_own"):
        Engine(make_state([Undeclared()]), Logger()).run_event(Event.FIT_START)


class SwapsOptimizer(Undeclared):
    may_own: ClassVar[frozenset[Resource]] = frozenset({Resource.OPTIMIZER})

    def owned_resources(self, state: State) -> Mapping[Resource, Tenure]:
        return {}


def test_loops_we_do_not_own_refuse_any_algorithm_that_may_replace_the_optimizer() -> None:
    check_algorithms([SWA()])
    for algorithm in (SWATS(), SwapsOptimizer()):
        with pytest.raises(ValueError, match=f"{algorithm.name} replaces the optimizer object"):
            check_algorithms([algorithm])


def test_resources_compare_equal_to_their_names() -> None:
    assert Resource.FINAL_WEIGHTS == "final_weights" and "lr" in {Resource.LR: Tenure()}
