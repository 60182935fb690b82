"""A ``torch.compile``'d model: trained compiled, keyed and averaged like the uncompiled model.

``backend="eager"``-style backends need no C compiler; the counting backend below tells how often a
compiled graph was built and run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from composer_swa import EMA, SWA, Callback, State, Trainer
from composer_swa.checkpoint import list_checkpoints, read_checkpoint
from composer_swa.compiled import split_compiled
from composer_swa.integrations import AlgorithmRunner
from composer_swa.loggers import ConsoleLogger, Logger
from tests.helpers import make_loader, mlp, quiet


class CountingBackend:
    """A dynamo backend that runs graphs eagerly and counts how many it built and how often they ran."""

    def __init__(self) -> None:
        self.compiled = 0
        self.calls = 0

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        self.compiled += 1

        def run(*args: Any) -> Any:
            self.calls += 1
            return graph.forward(*args)

        return run


class CallsPerBatch(Callback):
    """Compiled-graph runs during each batch, BATCH_END's algorithms (SWA's statistics pass) included."""

    def __init__(self, backend: CountingBackend) -> None:
        self.backend = backend
        self.seen = 0
        self.per_batch: list[int] = []

    def batch_end(self, state: State, logger: Logger) -> None:
        self.per_batch.append(self.backend.calls - self.seen)
        self.seen = self.backend.calls


def test_split_compiled_finds_the_original_module() -> None:
    model = mlp()
    assert split_compiled(model) == (model, None)
    compiled = torch.compile(model, backend="eager")
    assert split_compiled(compiled) == (model, compiled)


def test_checkpoints_and_exports_of_a_compiled_model_load_strictly_into_the_uncompiled_model(tmp_path: Path) -> None:
    compiled = torch.compile(mlp(), backend="eager")
    trainer = Trainer(compiled, make_loader(), "2ep", algorithms=[EMA(half_life="2ba")], save_folder=tmp_path, **quiet())
    trainer.fit()
    reference = mlp().state_dict()

    checkpoint = read_checkpoint(list_checkpoints(tmp_path)[-1])["state"]
    for weights in (
        checkpoint["model"],
        checkpoint["algorithms"]["EMA"]["average"],
        load_file(tmp_path / "final" / "model.safetensors"),
        load_file(tmp_path / "final" / "EMA-average.safetensors"),
        load_file(tmp_path / "final" / "EMA-training.safetensors"),
    ):
        assert sorted(weights) == sorted(reference)
        mlp().load_state_dict(weights, strict=True)
    assert trainer.state.model is compiled._orig_mod
    torch.testing.assert_close(load_file(tmp_path / "final" / "model.safetensors"), compiled._orig_mod.state_dict())

    # The checkpoint of the compiled run resumes an uncompiled run.
    ema = EMA(half_life="2ba")
    resumed = Trainer(mlp(), make_loader(), "3ep", algorithms=[ema], save_folder=tmp_path, autoresume=True, **quiet())
    resumed.fit()
    assert resumed.state.timestamp.batch_count == 12


def test_swa_statistics_pass_runs_on_the_original_module_and_training_stays_compiled(capsys: pytest.CaptureFixture[str]) -> None:
    backend = CountingBackend()
    model = mlp(batch_norm=True)
    compiled = torch.compile(model, backend=backend)
    counter = CallsPerBatch(backend)
    swa = SWA(swa_start="0.25dur", swa_end="0.5dur", swa_lr=0.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loggers = [ConsoleLogger()]
        trainer = Trainer(compiled, make_loader(), "4ep", algorithms=[swa], callbacks=[counter], **quiet(loggers=loggers))
        trainer.fit()
    # The pass ran over one epoch (64 samples) at swa_end, batch 8.
    assert swa.finished and "[batch 8] SWA: the model now holds" in capsys.readouterr().out.split("recomputed over 64 samples")[0]
    # Every training step ran the one compiled graph once, also after swa_end; the statistics pass
    # (4 batches at swa_end) ran none of it, and nothing was recompiled.
    assert counter.per_batch == [1] * 16
    assert backend.compiled == 1
    assert not [w for w in caught if "recompil" in str(w.message)]


def test_runner_names_the_averages_of_a_compiled_model_like_the_model() -> None:
    model = mlp()
    compiled = torch.compile(model, backend="eager")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = list(make_loader())
    ema = EMA(half_life="2ba")
    runner = AlgorithmRunner([ema], compiled, optimizer, data, max_duration="1ep", loggers=[])
    runner.fit_start()
    for x, y in data:
        runner.batch_start()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(compiled(x), y).backward()
        optimizer.step()
        runner.batch_end(samples=len(x))
    runner.fit_end()
    averaged = ema.averaged_weights()
    assert averaged is not None and list(averaged) == list(model.state_dict())
