"""The NumPy path of ``swa-average`` writes the torch path's bytes, and never imports torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from composer_swa import safetensors_format
from composer_swa.merging import IncompatibleCheckpoints, average_checkpoints
from composer_swa.merging.numpy_average import average_safetensors
from composer_swa.merging.recipes import layerwise_weights

_TORCH = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def _inputs(folder: Path, dtype: torch.dtype, uneven_keys: bool) -> list[str]:
    """Three checkpoints: floats that round in every way (ties, NaN, inf, subnormals), an int and a bool tensor."""
    paths = []
    for k in range(3):
        generator = torch.Generator().manual_seed(k)
        tensors = {
            "h.0.w": torch.randn(37, 5, generator=generator) * 3,
            "h.1.w": torch.randn(301, generator=generator) * 1e-3,
            "head.w": torch.tensor([1.0, -1.0, 65504.0, 3e38, float("inf"), float("nan"), 1e-40, 0.0]) * (k + 1),
            "empty": torch.zeros(0, 3),
        }
        tensors = {name: value.to(dtype) for name, value in tensors.items()}
        tensors |= {"steps": torch.tensor([k, 7], dtype=torch.int64), "mask": torch.tensor([True, k == 1])}
        if uneven_keys and k == 2:
            del tensors["h.1.w"]
            tensors["extra"] = torch.ones(3, dtype=dtype)
        paths.append(str(folder / f"in{k}.safetensors"))
        save_file(tensors, paths[-1], metadata={"batch": str(10 * (k + 1))})
    return paths


def _files(written: list[Path]) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in written}


@pytest.mark.parametrize("keys", ["strict", "union", "intersection"])
@pytest.mark.parametrize("out", [None, "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_numpy_writes_the_bytes_of_the_torch_path(
    dtype: str, out: str | None, keys: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safetensors_format, "CHUNK_ELEMENTS", 64)  # several slices per tensor
    inputs = _inputs(tmp_path, _TORCH[dtype], uneven_keys=keys != "strict")
    names = ["h.0.w", "h.1.w", "head.w", "empty", "extra"]
    cases = [None, [0.1, 0.3, 0.6], layerwise_weights(names, 3, [1, 2, 3], gradients=[[1, 0], [0, 1], [1, 1]])]
    for index, weights in enumerate(cases):
        provenance: dict[str, object] = {"method": f"case{index}"}
        torch_out, numpy_out = tmp_path / f"torch{index}", tmp_path / f"numpy{index}"
        ours = average_safetensors(inputs, str(numpy_out), weights, out, keys, 200, provenance)  # type: ignore[arg-type]
        theirs = average_checkpoints(inputs, torch_out, weights, _TORCH[out.upper().replace("LOAT", "")] if out else None,
                                     keys, 200, provenance)  # type: ignore[arg-type]  # fmt: skip
        assert ours is not None and len(ours) > 2  # sharded: several shards and an index
        assert _files(ours) == _files(theirs), (dtype, out, keys, index)


def test_bfloat16_rounds_to_nearest_even_and_nan_as_torch(tmp_path: Path) -> None:
    bits = torch.tensor([0x3F808000, 0x3F818000, 0x3F808001, 0x7F7FFFFF, 0xFF800000, 0x7FC00001, 0x00000001], dtype=torch.int64)
    values = bits.to(torch.int32).view(torch.float32)
    save_file({"w": values}, tmp_path / "a.safetensors")

    average_safetensors([str(tmp_path / "a.safetensors")], str(tmp_path / "o.safetensors"), [1.0], "bfloat16", "strict", None, {})

    expected = values.to(torch.bfloat16)  # ties to even, overflow to inf, NaN as torch writes it
    assert torch.equal(load_file(tmp_path / "o.safetensors")["w"].view(torch.int16), expected.view(torch.int16))


def test_mismatches_are_reported_as_by_the_torch_path(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2), "b": torch.ones(1)}, tmp_path / "a.safetensors")
    save_file({"w": torch.ones(3, dtype=torch.float16)}, tmp_path / "b.safetensors")
    inputs = [str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")]

    with pytest.raises(IncompatibleCheckpoints) as ours:
        average_safetensors(inputs, str(tmp_path / "n.safetensors"), None, None, "strict", None, {})
    with pytest.raises(IncompatibleCheckpoints) as theirs:
        average_checkpoints(inputs, tmp_path / "t.safetensors", None)

    assert str(ours.value) == str(theirs.value) and "'b' is in inputs [0] but not in [1]" in str(ours.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors"]


def test_float8_inputs_are_left_to_torch(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2).to(torch.float8_e4m3fn)}, tmp_path / "a.safetensors")

    assert (
        average_safetensors([str(tmp_path / "a.safetensors")], str(tmp_path / "o.safetensors"), None, None, "strict", None, {})
        is None
    )
    assert not (tmp_path / "o.safetensors").exists()


_NO_TORCH = "import sys; sys.modules['torch'] = None; from composer_swa.cli.average import main; main()"


def _swa_average_without_torch(*arguments: object) -> subprocess.CompletedProcess[str]:
    """``swa-average`` in a fresh interpreter where ``import torch`` fails."""
    command = [sys.executable, "-c", _NO_TORCH, *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), check=False)


def test_the_command_averages_safetensors_without_importing_torch(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path, torch.bfloat16, uneven_keys=False)[::-1]  # newest first: lawa must reorder them by 'batch'

    uniform = _swa_average_without_torch(*inputs, "-o", tmp_path / "u.safetensors")
    lawa = _swa_average_without_torch(*inputs, "--method", "lawa", "--last-k", "1", "-o", tmp_path / "lawa/")
    save_file({"h.0.w": torch.zeros(2)}, tmp_path / "other.safetensors")
    refused = _swa_average_without_torch(inputs[0], tmp_path / "other.safetensors", "-o", tmp_path / "x.safetensors")

    assert uniform.returncode == 0 and lawa.returncode == 0, uniform.stderr + lawa.stderr
    mean = sum(load_file(path)["h.0.w"].float() for path in inputs) / 3
    assert torch.allclose(load_file(tmp_path / "u.safetensors")["h.0.w"].float(), mean, rtol=1e-2)
    assert "ordered by the training step stored in each" in lawa.stdout
    newest = load_file(inputs[0])  # batch 30
    assert torch.equal(load_file(tmp_path / "lawa" / "model.safetensors")["h.0.w"], newest["h.0.w"])
    assert (
        refused.returncode == 2
        and "Traceback" not in refused.stderr
        and "has shape [37, 5] in input 0, [2] in input 1" in refused.stderr
    )
    assert not (tmp_path / "x.safetensors").exists()
    assert np.isnan(load_file(tmp_path / "u.safetensors")["head.w"][5].item())
