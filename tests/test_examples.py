"""The examples README points to must keep running (tiny settings, so this stays fast)."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setattr(sys, "argv", [name, *argv])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_plain_loop_example(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("plain_loop_swa.py", [], monkeypatch, capsys)
    match = re.search(r"averaged (\d+) snapshots; training accuracy of the SWA model: ([\d.]+)%", out)
    assert match is not None and int(match.group(1)) == 17  # batches 96, 100, ..., 160
    assert float(match.group(2)) > 90


def test_huggingface_example(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    out = run_example("huggingface_swa.py", [], monkeypatch, capsys)
    match = re.search(r"averaged (\d+) snapshots; eval accuracy of the SWA model: ([\d.]+)%", out)
    assert match is not None and int(match.group(1)) == 20  # steps 116, 120, ..., 192 of 6 × 32
    assert float(match.group(2)) > 90


def test_lightning_example(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("lightning")
    out = run_example("lightning_swa.py", [], monkeypatch, capsys)
    match = re.search(r"averaged (\d+) snapshots; training accuracy of the SWA model: ([\d.]+)%", out)
    assert match is not None and int(match.group(1)) == 17  # batches 96, 100, ..., 160, as in the plain loop
    assert float(match.group(2)) > 90
