"""Streaming checkpoint averaging against NumPy, on every input kind, sharded outputs and mismatches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from composer_swa import safetensors_format
from composer_swa.merging import IncompatibleCheckpoints, average_checkpoints, cosine_similarities, normalize_weights
from composer_swa.merging.inputs import open_sources
from composer_swa.merging.recipes import layerwise_weights
from composer_swa.merging.sources import SourceError, open_source


def checkpoints(count: int = 3, dtype: torch.dtype = torch.float32) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "layers.0.weight": torch.randn(5, 7, generator=generator).to(dtype),
            "layers.1.weight": torch.randn(3, 5, generator=generator).to(dtype),
            "bn.num_batches_tracked": torch.tensor(10 * (k + 1)),
            "mask": torch.tensor([True, False, k % 2 == 0]),
        }
        for k in range(count)
    ]


def numpy_average(states: list[dict[str, torch.Tensor]], weights: list[float], name: str) -> np.ndarray:
    return sum(w * states[k][name].to(torch.float64).numpy() for k, w in enumerate(weights))


def save_all(folder: Path, states: list[dict[str, torch.Tensor]]) -> list[Path]:
    paths = []
    for k, state in enumerate(states):
        path = folder / f"in{k}.safetensors"
        save_file(state, path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("weights", [None, [0.5, 0.3, 0.2], [2.0, -1.0, 0.0]])
def test_the_average_equals_numpy_and_integers_are_copied_from_the_first(tmp_path: Path, weights: list[float] | None) -> None:
    states = checkpoints()
    average_checkpoints(save_all(tmp_path, states), tmp_path / "out.safetensors", weights)
    out = load_file(tmp_path / "out.safetensors")

    expected_weights = weights or [1 / 3] * 3
    for name in ("layers.0.weight", "layers.1.weight"):
        np.testing.assert_allclose(out[name].numpy(), numpy_average(states, expected_weights, name), rtol=1e-6, atol=1e-6)
    assert torch.equal(out["bn.num_batches_tracked"], states[0]["bn.num_batches_tracked"])
    assert torch.equal(out["mask"], states[0]["mask"])


def test_bf16_inputs_accumulate_in_fp32_and_keep_their_dtype_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safetensors_format, "CHUNK_ELEMENTS", 8)  # many slices per tensor
    states = checkpoints(4, torch.bfloat16)
    paths = save_all(tmp_path, states)
    average_checkpoints(paths, tmp_path / "bf16.safetensors")
    average_checkpoints(paths, tmp_path / "fp32.safetensors", dtype=torch.float32)

    exact = numpy_average(states, [0.25] * 4, "layers.0.weight")
    as_fp32 = load_file(tmp_path / "fp32.safetensors")["layers.0.weight"]
    as_bf16 = load_file(tmp_path / "bf16.safetensors")["layers.0.weight"]
    assert as_fp32.dtype == torch.float32 and as_bf16.dtype == torch.bfloat16
    np.testing.assert_allclose(as_fp32.numpy(), exact, rtol=1e-6, atol=1e-7)  # fp32 accumulation: no bf16 rounding
    assert torch.equal(as_bf16, torch.from_numpy(exact).to(torch.float32).to(torch.bfloat16))


def test_every_input_kind_is_read(tmp_path: Path) -> None:
    states = checkpoints(2)
    save_file(states[0], tmp_path / "plain.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in states[1].items()}, "epoch": 3}, tmp_path / "nested.pt")
    folder = tmp_path / "hf"
    folder.mkdir()
    save_file(dict(list(states[0].items())[:2]), folder / "model-00001-of-00002.safetensors")
    save_file(dict(list(states[0].items())[2:]), folder / "model-00002-of-00002.safetensors")
    weight_map = {name: f"model-0000{1 + (k >= 2)}-of-00002.safetensors" for k, name in enumerate(states[0])}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text('{"model_type": "toy"}')

    # Read together, the DDP-saved input's 'module.' is stripped: the other inputs lack it.
    for source in open_sources([tmp_path / "plain.safetensors", tmp_path / "nested.pt", folder]):
        assert sorted(source.infos) == sorted(states[0])
        source.close()
    written = average_checkpoints([folder, tmp_path / "nested.pt"], tmp_path / "out")
    out = load_file(written[0])
    np.testing.assert_allclose(out["layers.1.weight"].numpy(), numpy_average(states, [0.5, 0.5], "layers.1.weight"), rtol=1e-6)
    assert (tmp_path / "out" / "config.json").read_text() == '{"model_type": "toy"}'  # the model folder's files come along


def test_a_sharded_output_with_its_index_and_provenance(tmp_path: Path) -> None:
    states = checkpoints(2)
    written = average_checkpoints(
        save_all(tmp_path, states), tmp_path / "sharded", max_shard_bytes=150, provenance={"method": "uniform"}
    )

    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len({*index["weight_map"].values()}) == len(written) - 1 > 1
    source = open_source(tmp_path / "sharded")
    np.testing.assert_allclose(
        source.read("layers.0.weight").reshape(5, 7).numpy(), numpy_average(states, [0.5, 0.5], "layers.0.weight"), rtol=1e-6
    )
    source.close()
    with safe_open(written[0], "pt") as file:
        metadata = file.metadata()
    assert metadata["method"] == "uniform" and json.loads(metadata["inputs"]) == [
        str(tmp_path / "in0.safetensors"),
        str(tmp_path / "in1.safetensors"),
    ]


def test_every_difference_is_listed_in_one_error(tmp_path: Path) -> None:
    first, second = checkpoints(2)
    second["layers.0.weight"] = torch.zeros(4, 7)
    second["mask"] = second["mask"].to(torch.int64)
    del second["layers.1.weight"]
    second["extra"] = torch.zeros(1)
    paths = save_all(tmp_path, [first, second])

    with pytest.raises(IncompatibleCheckpoints) as error:
        average_checkpoints(paths, tmp_path / "never.safetensors")
    message = str(error.value)
    assert "4 differences" in message
    assert "'layers.0.weight' has shape [5, 7] in input 0, [4, 7] in input 1" in message
    assert "'mask' has dtype torch.bool in input 0, torch.int64 in input 1" in message
    assert "'layers.1.weight' is in inputs [0] but not in [1]" in message and "'extra' is in inputs [1] but not in [0]" in message
    assert not (tmp_path / "never.safetensors").exists()


def test_union_and_intersection_relax_keys(tmp_path: Path) -> None:
    first, second = checkpoints(2)
    del second["layers.1.weight"]
    paths = save_all(tmp_path, [first, second])

    average_checkpoints(paths, tmp_path / "union.safetensors", keys="union")
    average_checkpoints(paths, tmp_path / "inter.safetensors", keys="intersection")

    union, inter = load_file(tmp_path / "union.safetensors"), load_file(tmp_path / "inter.safetensors")
    assert torch.equal(union["layers.1.weight"], first["layers.1.weight"])  # averaged over the one input that has it
    assert "layers.1.weight" not in inter and sorted(inter) == sorted(second)


def test_layerwise_weights_follow_rules_and_gradients(tmp_path: Path) -> None:
    states = checkpoints(2)
    names = list(states[0])
    weigh = layerwise_weights(names, 2, [1, 1], rules=[(r"^layers\.1\.", [1, 3])], gradients=[[1, 0], [0, 1]])
    average_checkpoints(save_all(tmp_path, states), tmp_path / "out.safetensors", weigh)
    out = load_file(tmp_path / "out.safetensors")

    np.testing.assert_allclose(
        out["layers.0.weight"].numpy(), states[0]["layers.0.weight"].numpy()
    )  # gradient at layer 0: [1, 0]
    expected = numpy_average(states, [0.25, 0.75], "layers.1.weight")  # the rule wins over the gradient
    np.testing.assert_allclose(out["layers.1.weight"].numpy(), expected, rtol=1e-6)


def test_cosine_similarity_matches_numpy(tmp_path: Path) -> None:
    states = checkpoints(2)
    flat = [np.concatenate([s[n].double().numpy().ravel() for n in ("layers.0.weight", "layers.1.weight")]) for s in states]
    expected = float(flat[0] @ flat[1] / np.linalg.norm(flat[0]) / np.linalg.norm(flat[1]))

    similarity = cosine_similarities(save_all(tmp_path, states))

    assert similarity[0][0] == pytest.approx(1.0) and similarity[0][1] == pytest.approx(expected, rel=1e-9)


def test_weights_normalize_or_warn() -> None:
    assert normalize_weights([2, 1, 1]) == [0.5, 0.25, 0.25]
    with pytest.warns(UserWarning, match="negative weights"):
        normalize_weights([1.5, -0.5], normalize=False)
    with pytest.warns(UserWarning, match="sum to 2, not 1"):
        normalize_weights([1, 1], normalize=False)
    with pytest.raises(ValueError, match="sum to 0"):
        normalize_weights([1, -1])


def test_unreadable_inputs_are_named(tmp_path: Path) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(SourceError, match=r"bad.safetensors' is not a safetensors file"):
        open_source(tmp_path / "bad.safetensors")
    with pytest.raises(SourceError, match=r"input .*missing.pt' does not exist"):
        open_source(tmp_path / "missing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"holds none of model\.safetensors\.index\.json"):
        open_source(tmp_path / "empty")
