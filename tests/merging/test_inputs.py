"""swa-average's inputs: a wrapper prefix comes off only where a wrapper put it, and the command says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from composer_swa.cli.average import main
from composer_swa.merging.inputs import open_sources
from tests.helpers import ChildNamedModule, OnlyChildModule, prefixed_weights


def test_swa_average_strips_only_where_inputs_disagree(tmp_path: Path) -> None:
    first, second = ChildNamedModule(), ChildNamedModule()
    save_file(prefixed_weights(first, "module."), tmp_path / "ddp.safetensors")  # DDP-saved: every key prefixed
    save_file(prefixed_weights(second, scale=3.0), tmp_path / "plain.safetensors")
    result = CliRunner().invoke(main, [str(tmp_path / "ddp.safetensors"), str(tmp_path / "plain.safetensors"),
                                       "-o", str(tmp_path / "avg.safetensors")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning: stripped the wrapper prefix 'module.' from every key of" in result.output
    assert "ddp.safetensors" in result.output and "plain.safetensors' (" not in result.output
    averaged = load_file(tmp_path / "avg.safetensors")
    assert sorted(averaged) == ["module.weight", "weight"]  # the model's own child 'module' is kept
    for name, tensor in first.state_dict().items():
        torch.testing.assert_close(averaged[name], (tensor + 3 * second.state_dict()[name]) / 2)
    ChildNamedModule().load_state_dict(averaged, strict=True)


def test_inputs_that_all_carry_module_keep_it(tmp_path: Path) -> None:
    for k in range(2):
        save_file(prefixed_weights(OnlyChildModule(), scale=k + 1.0), tmp_path / f"{k}.safetensors")
    sources = open_sources([tmp_path / "0.safetensors", tmp_path / "1.safetensors"])
    assert [sorted(source.infos) for source in sources] == [["module.bias", "module.weight"]] * 2
    assert [source.stripped_prefix for source in sources] == ["", ""]
    for source in sources:
        source.close()
    # Fitting a model without the child: stripped, and said so.
    with pytest.warns(UserWarning, match=r"stripped the wrapper prefix 'module\.' .*the model's keys do not"):
        sources = open_sources([tmp_path / "0.safetensors"], target=list(torch.nn.Linear(2, 2).state_dict()))
    assert sorted(sources[0].infos) == ["bias", "weight"]
    sources[0].close()
