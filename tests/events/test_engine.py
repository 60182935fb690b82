from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from composer_swa import SWA, Algorithm, AlgorithmConflictError, Callback, Engine, Event, Resource, State
from composer_swa.loggers import Logger
from tests.helpers import weights_only_round_trip


class Recorder(Algorithm):
    events: ClassVar[frozenset[Event]] = frozenset({Event.BATCH_END, Event.FIT_START})

    def __init__(self, name: str, log: list[str], owns: frozenset[Resource] = frozenset()) -> None:
        self.tag, self.log, self.may_own = name, log, owns  # type: ignore[misc]  # a class's resources, per instance here
        self.match_calls: list[Event] = []

    def match(self, event: Event, state: State) -> bool:
        self.match_calls.append(event)
        return True

    def apply(self, event: Event, state: State, logger: Any) -> None:
        self.log.append(f"{self.tag}:{event.value}")


class RecordingCallback(Callback):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def batch_end(self, state: State, logger: Logger) -> None:
        self.log.append("callback:batch_end")


def make_state(**kwargs: Any) -> State:
    return State(model=torch.nn.Linear(2, 2), max_duration="4ba", train_dataloader=[0, 1, 2, 3], **kwargs)


def test_event_values_are_callback_method_names() -> None:
    assert Event.BATCH_END.value == "batch_end"
    for event in Event:
        assert callable(getattr(Callback, event.value))


def test_algorithms_in_list_order_then_callbacks() -> None:
    log: list[str] = []
    state = make_state(algorithms=[Recorder("b", log), Recorder("a", log)], callbacks=[RecordingCallback(log)])
    Engine(state, Logger()).run_event(Event.BATCH_END)
    assert log == ["b:batch_end", "a:batch_end", "callback:batch_end"]


def test_dispatch_skips_uninterested_algorithms_and_callbacks() -> None:
    log: list[str] = []
    recorder = Recorder("r", log)
    engine = Engine(make_state(algorithms=[recorder], callbacks=[RecordingCallback(log)]), Logger())
    for event in (Event.BATCH_START, Event.AFTER_FORWARD, Event.EPOCH_END):
        engine.run_event(event)
    assert recorder.match_calls == [] and log == []
    assert engine._callbacks_at[Event.BATCH_START] == []
    engine.run_event(Event.BATCH_END)
    assert recorder.match_calls == [Event.BATCH_END]
    assert engine.trace[("Recorder", "batch_end")] == 1


def test_conflicting_owners_fail_at_fit_start_naming_both() -> None:
    log: list[str] = []
    first, second = Recorder("x", log, frozenset({Resource.LR})), Recorder("y", log, frozenset({Resource.LR}))
    engine = Engine(make_state(algorithms=[first, second]), Logger())
    with pytest.raises(AlgorithmConflictError, match=r"Recorder and Recorder both take charge of 'lr'.*schedule"):
        engine.run_event(Event.FIT_START)


def test_two_swa_that_both_own_the_lr_conflict() -> None:
    state = make_state(
        algorithms=[
            SWA(swa_start="1ba", update_interval="1ba", schedule_swa_lr=True),
            SWA(swa_start="1ba", swa_end="3ba", update_interval="1ba", schedule_swa_lr=True),
        ]
    )
    with pytest.raises(AlgorithmConflictError, match="SWA and SWA both take charge of 'lr'"):
        Engine(state, Logger()).run_event(Event.FIT_START)


def test_plain_loop_drives_the_engine() -> None:
    """A user's own loop: State + Engine, events fired by hand, no Trainer."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    batches = [(torch.randn(4, 3), torch.randn(4, 1)) for _ in range(5)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    swa = SWA(swa_start="0.6dur", update_interval="1ba")
    state = State(model=model, max_duration="2ep", train_dataloader=batches, optimizers=[optimizer], algorithms=[swa])
    engine = Engine(state, Logger())
    snapshots = []
    engine.run_event(Event.FIT_START)
    for _ in range(2):
        for x, y in batches:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            state.timestamp.advance_batch(samples=len(x), tokens=0)
            if state.timestamp.batch_count >= 6:
                snapshots.append(torch.cat([p.detach().flatten().clone() for p in model.parameters()]))
            engine.run_event(Event.BATCH_END)
        state.timestamp.advance_epoch()
        engine.run_event(Event.EPOCH_END)
    engine.run_event(Event.FIT_END)
    expected = torch.stack(snapshots).mean(0)
    assert swa.n_averaged == 5
    torch.testing.assert_close(torch.cat([p.detach().flatten() for p in model.parameters()]), expected)


def test_two_instances_of_one_class_do_not_collide_in_a_checkpoint() -> None:
    def build() -> tuple[State, SWA, SWA]:
        first = SWA(swa_start="1ba", swa_end="2ba", update_interval="1ba")
        second = SWA(swa_start="1ba", swa_end="4ba", update_interval="1ba")
        return make_state(algorithms=[first, second]), first, second

    state, first, second = build()
    first.n_averaged, second.n_averaged = 2, 5
    saved = weights_only_round_trip(state.state_dict())
    assert sorted(saved["algorithms"]) == ["SWA", "SWA_1"]
    restored, restored_first, restored_second = build()
    restored.load_state_dict(saved)
    assert (restored_first.n_averaged, restored_second.n_averaged) == (2, 5)
    with pytest.raises(ValueError, match=r"the checkpoint holds algorithms \['SWA', 'SWA_1'\], this run has \['SWA'\]"):
        make_state(algorithms=[SWA()]).load_state_dict(saved)
