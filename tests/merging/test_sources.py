"""Safetensors headers are checked before anything is allocated or read: a bad file is named, never a raw error."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from composer_swa.merging.sources import SourceError, open_source


def raw_safetensors(path: Path, header: object, data: bytes = b"") -> Path:
    """A file laid out as safetensors (8-byte length, JSON header, data) with any header at all."""
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


GOOD = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
_CASE_NAMES = "no-dtype no-offsets not-object unknown-dtype bad-shape one-offset offsets-vs-shape truncated header-list metadata"
CASES = _CASE_NAMES.split()


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"w": {"shape": [2], "data_offsets": [0, 8]}}, bytes(8), r"tensor 'w' needs 'dtype', 'shape' and 'data_offsets'"),
        ({"w": {"dtype": "F32", "shape": [2]}}, bytes(8), r"tensor 'w' needs 'dtype', 'shape' and 'data_offsets'"),
        ({"w": [1, 2]}, bytes(8), r"tensor 'w' needs 'dtype'"),
        ({"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), r"tensor 'w' has dtype 'F33'"),
        ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8), r"tensor 'w' has shape \[-2\]"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, bytes(8), r"tensor 'w' has data_offsets \[0\]"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, bytes(8), r"\(4 bytes\), its shape \[2\] needs 8"),
        (GOOD, bytes(4), r"is truncated: tensor 'w' ends past the end of the file"),
        ([1, 2, 3], b"", r"its header is a JSON list, not an object of tensors"),
        ({"__metadata__": [1], **GOOD}, bytes(8), r"__metadata__ is \[1\], not an object of strings"),
    ],
    ids=CASES,
)
def test_a_malformed_header_is_refused_naming_file_and_tensor(header: object, data: bytes, message: str, tmp_path: Path) -> None:
    path = raw_safetensors(tmp_path / "bad.safetensors", header, data)

    with pytest.raises(SourceError, match=r"'.*bad\.safetensors'.*" + message):
        open_source(path)


def test_a_file_of_another_kind_is_refused_before_its_header_length_is_allocated(tmp_path: Path) -> None:
    path = tmp_path / "passwd.safetensors"
    path.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")  # its first 8 bytes ask for a 7.6 EB header

    with pytest.raises(SourceError, match=r"passwd\.safetensors' is not a safetensors file: its first 8 bytes give a header of"):
        open_source(path)
    (tmp_path / "tiny.safetensors").write_bytes(b"abc")
    with pytest.raises(SourceError, match=r"tiny\.safetensors' is not a safetensors file: it has 3 bytes"):
        open_source(tmp_path / "tiny.safetensors")


def test_a_valid_file_reads_back_its_tensors(tmp_path: Path) -> None:
    weights = {"w": torch.arange(6.0).reshape(2, 3), "step": torch.tensor([3], dtype=torch.int64)}
    save_file(weights, tmp_path / "ok.safetensors")

    source = open_source(tmp_path / "ok.safetensors")
    try:
        assert {name: info.shape for name, info in source.infos.items()} == {"w": (2, 3), "step": (1,)}
        assert source.read("w").tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        assert source.read("step").tolist() == [3]
    finally:
        source.close()


def test_a_digest_beside_a_safetensors_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(4)}, path)
    path.with_name("model.safetensors.sha256").write_text(hashlib.sha256(b"another file").hexdigest() + "  model.safetensors\n")

    with pytest.raises(SourceError, match=r"model\.safetensors' is corrupt: its SHA-256 differs from model\.safetensors\.sha256"):
        open_source(path)
