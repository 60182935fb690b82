"""Oldest first: steps stored in composer_swa files decide the order; backwards orders of other inputs are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from composer_swa.merging.order import chronological, stored_step


def export(path: Path, batch: int | None) -> str:
    """A safetensors file as composer_swa's export writes it (its step in the metadata), or a plain one."""
    save_file({"w": torch.ones(1)}, path, metadata={"batch": str(batch), "epoch": "1"} if batch is not None else None)
    return str(path)


def test_exports_are_ordered_by_the_step_in_their_metadata(tmp_path: Path) -> None:
    late, early = export(tmp_path / "final.safetensors", 300), export(tmp_path / "mid.safetensors", 120)

    ordered, note = chronological([late, early], "decay")

    assert ordered == [early, late] and stored_step(late) == 300
    assert note.endswith(f"{early} (step 120), {late} (step 300)")


def test_known_steps_that_go_backwards_are_refused_among_unknown_ones(tmp_path: Path) -> None:
    steps = {"b.safetensors": 50, "plain.safetensors": None, "a.safetensors": 10}
    paths = [export(tmp_path / name, batch) for name, batch in steps.items()]

    with pytest.raises(ValueError, match=r"a\.safetensors' \(step 10\) comes after '.*b\.safetensors' \(step 50\)"):
        chronological(paths, "lawa")
    assert chronological(paths, "lawa", keep_order=True)[0] == paths


def test_names_that_differ_in_more_than_numbers_say_nothing_of_order(tmp_path: Path) -> None:
    paths = [export(tmp_path / "warm-7.safetensors", None), export(tmp_path / "cool-3.safetensors", None)]

    assert chronological(paths, "lawa") == (paths, "inputs averaged in the order given, taken as oldest first")
