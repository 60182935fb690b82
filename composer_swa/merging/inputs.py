"""Opening the inputs of an average together, so that their names agree where only a wrapper made them differ."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from composer_swa.checkpoint.prefixes import describe_stripped, wrapper_prefix

__all__ = ["open_sources", "read_state_dicts"]


def open_sources(
    paths: Sequence[str | Path], target: Collection[str] | None = None, opener: Callable[[Path], Any] | None = None
) -> list[Any]:
    """Opens every input (see :func:`~composer_swa.merging.sources.open_source`) and strips a wrapper
    prefix from an input's names only where a wrapper put it, with a warning that says so.

    A prefix is stripped only when every key of that input carries it, and then only if the keys
    must fit something that lacks it: ``target`` (the model's ``state_dict()`` keys) when given,
    else the other inputs. A ``torch.compile`` prefix (``_orig_mod.``) is always a wrapper's; a lone
    ``module.`` may be the model's own child (Composer's ``ComposerClassifier``), so inputs that all
    carry it keep it. ``opener`` opens one input (default: torch's :func:`~composer_swa.merging.sources.open_source`;
    :mod:`~composer_swa.merging.numpy_average` passes its own).

    Example:
        >>> import tempfile, torch
        >>> from safetensors.torch import save_file
        >>> folder = Path(tempfile.mkdtemp())
        >>> save_file({"module.w": torch.ones(2)}, folder / "ddp.safetensors")
        >>> save_file({"w": torch.zeros(2)}, folder / "plain.safetensors")
        >>> sources = open_sources([folder / "ddp.safetensors", folder / "plain.safetensors"])
        >>> [list(source.infos) for source in sources]
        [['w'], ['w']]
    """
    if opener is None:
        from composer_swa.merging.sources import open_source

        opener = open_source
    sources: list[Any] = []
    reasons: dict[int, str] = {}
    try:
        for path in paths:
            sources.append(opener(Path(path)))
        for index, source in enumerate(sources):
            if target is None and (prefix := wrapper_prefix(list(source.infos))):
                source.strip_prefix(prefix)
                reasons[index] = "no model names a child '_orig_mod' or '_fsdp_wrapped_module'"
        for index, source in enumerate(sources):
            others = [name for k, other in enumerate(sources) if k != index for name in other.infos]
            reference = target if target is not None else others
            if reference and (prefix := wrapper_prefix(list(source.infos), reference)):
                source.strip_prefix(prefix)
                reasons[index] = "the model's keys do not" if target is not None else "the other inputs' keys do not"
    except BaseException:
        for source in sources:
            source.close()
        raise
    for index, reason in reasons.items():
        source = sources[index]
        warnings.warn(describe_stripped(source.stripped_prefix, repr(str(source.path)), reason), stacklevel=2)
    return sources


def read_state_dicts(paths: Sequence[str | Path], target: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Every tensor of every input, copied into memory (soups score whole state dicts), named as by :func:`open_sources`.

    Example:
        >>> import tempfile, torch
        >>> from safetensors.torch import save_file
        >>> path = Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> save_file({"w": torch.ones(2, 2)}, path)
        >>> read_state_dicts([path])[0]["w"].shape
        torch.Size([2, 2])
    """
    sources = open_sources(paths, target)
    try:
        return [{name: src.read(name).reshape(info.shape).clone() for name, info in src.infos.items()} for src in sources]
    finally:
        for source in sources:
            source.close()
