"""Where ``swa-average`` writes: the output checked before any work, and nothing left behind when a write fails.

An output is a ``.safetensors`` file, or a folder (``model.safetensors``, or shards and their
index). A name with another suffix (``out/x.txt``) is refused rather than made into a folder of
that name, and so is an output that would overwrite one of the inputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from composer_swa.safetensors_format import StreamTensor, output_metadata, write_stream

__all__ = ["check_output", "copy_model_files", "removed_on_failure", "write_merged"]

# What a folder output holds: model.safetensors, model-00001-of-00002.safetensors, model.safetensors.index.json.
_WRITTEN_IN_FOLDER = re.compile(r"^model(-\d+-of-\d+)?\.safetensors(\.index\.json)?$")
_WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")
_LAYER_COUNTS = ("num_hidden_layers", "n_layer", "num_layers")


def check_output(output: str | Path, inputs: Sequence[str | Path]) -> Path:
    """The output path, after checking it names a ``.safetensors`` file or a folder, and no input.

    A folder is an existing folder, a name ending in ``/``, or a new name without a suffix.

    Raises:
        ValueError: The output has another suffix, is an existing file that is not safetensors, or
            would overwrite an input.

    Example:
        >>> check_output("soup/", ["a.safetensors", "b.safetensors"])
        PosixPath('soup')
        >>> check_output("a.safetensors", ["a.safetensors"])
        Traceback (most recent call last):
        ...
        ValueError: -o 'a.safetensors' is input 0 ('a.safetensors'): averaging would overwrite it; choose another output
    """
    text = str(output)
    path = Path(text)
    is_file = path.suffix == ".safetensors" and not path.is_dir()
    if not is_file and not path.is_dir():
        if path.exists():
            raise ValueError(
                f"-o {text!r} is an existing file, not a .safetensors file or a folder; give a .safetensors file, or a folder"
            )
        if path.suffix and not text.endswith(("/", os.sep)):
            raise ValueError(
                f"-o {text!r} ends in {path.suffix!r}: the output is a .safetensors file, or a folder (an existing "
                "one, a name without a suffix, or a name ending in '/'); for example -o averaged.safetensors or -o averaged/"
            )
    target = path.resolve()
    for index, given in enumerate(inputs):
        source = Path(given).resolve()
        if source == target or (not is_file and source.parent == target and _WRITTEN_IN_FOLDER.match(source.name)):
            raise ValueError(
                f"-o {text!r} is input {index} ({str(given)!r}): averaging would overwrite it; choose another output"
                if source == target
                else f"-o {text!r} would overwrite input {index} ({str(given)!r}); choose another output folder"
            )
    return path


@contextmanager
def removed_on_failure(output: Path) -> Iterator[None]:
    """Removes what the block wrote to ``output`` if it fails (a full disk, an interrupt), then re-raises.

    Files the block added to ``output`` go, and so do folders it created (``output`` or its parents);
    files that were there before stay.
    """
    is_folder = output.suffix != ".safetensors" or output.is_dir()
    folder = output if is_folder else output.parent
    created = next((p for p in reversed([folder, *folder.parents]) if not p.exists()), None)
    before = set(output.iterdir()) if is_folder and output.is_dir() else None
    file_existed = not is_folder and output.exists()
    try:
        yield
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        elif before is not None:
            for path in set(output.iterdir()) - before:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        elif not is_folder and not file_existed:
            output.unlink(missing_ok=True)
        raise


def copy_model_files(source: Path, output: Path, layers: int | None = None) -> None:
    """Config, tokenizer and other small files of a model folder, copied into a folder output; never its weights.

    With ``layers`` (a merge that stacked layers), ``config.json``'s layer count says so.
    """
    for path in source.iterdir():
        if path.is_file() and not path.name.endswith(_WEIGHT_FILES) and not (output / path.name).exists():
            shutil.copy2(path, output / path.name)
    config = output / "config.json"
    if layers is not None and config.is_file():
        values = json.loads(config.read_text(encoding="utf-8"))
        counts = [key for key in _LAYER_COUNTS if isinstance(values.get(key), int)]
        if counts:
            config.write_text(json.dumps(values | dict.fromkeys(counts, layers), indent=2) + "\n", encoding="utf-8")


def write_merged(
    tensors: Sequence[StreamTensor],
    output: Path,
    sources: Sequence[Any],
    weights: object,
    provenance: dict[str, object] | None,
    max_shard_bytes: int | None,
    model_folder: Path | None = None,
    layers: int | None = None,
) -> list[Path]:
    """Writes a merge of ``sources`` (both back ends' inputs) with its provenance header; returns the files written.

    A folder output also gets the config and tokenizer files of ``model_folder`` (default: the first
    model folder among the inputs), its layer count set to ``layers`` when given; a failure (a full
    disk mid-way) leaves no shard behind.
    """
    metadata = output_metadata([str(source.path) for source in sources], weights, provenance)
    with removed_on_failure(output):
        written = write_stream(list(tensors), output, metadata, max_shard_bytes)
        folder_input = model_folder or next((source.folder for source in sources if source.folder is not None), None)
        if output.suffix != ".safetensors" and folder_input is not None:
            copy_model_files(folder_input, output, layers)
    return written
