"""A character-level language-modelling dataset over a UTF-8 text file or the Python standard library's source."""

from __future__ import annotations

import functools
import os
import sysconfig
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["CharTextDataset", "char_text"]

CORPORA = ("python-stdlib",)
#: Folders of the standard library left out of ``corpus="python-stdlib"``: tests, IDLE, installed packages.
_SKIPPED_FOLDERS = frozenset({"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"})
_UNICODE = 0x110000  # code points


def _code_points(text: str) -> np.ndarray:
    # UTF-32 is one 4-byte unit per code point; surrogatepass keeps lone surrogates (from surrogateescape) encodable.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _text(code_points: np.ndarray) -> str:
    return code_points.astype(np.uint32).tobytes().decode("utf-32-le", "surrogatepass")


def encode(text: str, vocabulary: str | None = None) -> tuple[torch.Tensor, str]:
    """``text`` as int32 ids into ``vocabulary`` (default: its sorted characters), and the vocabulary.

    Vectorised: a lookup table indexed by code point, instead of a dictionary look-up per character.

    Raises:
        ValueError: When ``text`` has characters outside ``vocabulary``, listing the first ten.

    Example:
        >>> encode("abca")
        (tensor([0, 1, 2, 0], dtype=torch.int32), 'abc')
    """
    codes = _code_points(text)
    if vocabulary is None:
        vocabulary = _text(np.flatnonzero(np.bincount(codes, minlength=_UNICODE)))
    table = np.full(_UNICODE, -1, dtype=np.int32)
    table[_code_points(vocabulary)] = np.arange(len(vocabulary), dtype=np.int32)
    ids = table[codes]
    if ids.size and ids.min() < 0:
        unknown = sorted(_text(np.unique(codes[ids < 0])))
        raise ValueError(f"the text has characters outside the vocabulary: {unknown[:10]!r}")
    return torch.from_numpy(ids), vocabulary


class CharTextDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Non-overlapping blocks of ``block_size`` characters; the target is the block shifted by one.

    Args:
        text: The text.
        block_size: Characters per sample.
        vocabulary: The characters, in id order; defaults to the sorted characters of ``text``.

    Example:
        >>> data = CharTextDataset("hello world, hello", block_size=4)
        >>> len(data), data.vocab_size, data.decode(data[0][0])
        (4, 9, 'hell')
    """

    def __init__(self, text: str, block_size: int, vocabulary: str | None = None) -> None:
        self.ids, self.vocabulary = encode(text, vocabulary)  # int32: a quarter of int64's memory on 11M characters
        self.block_size = block_size
        self.tokens_per_sample = block_size

    @classmethod
    def _from_ids(cls, ids: torch.Tensor, vocabulary: str, block_size: int) -> CharTextDataset:
        dataset = cls.__new__(cls)
        dataset.ids, dataset.vocabulary, dataset.block_size, dataset.tokens_per_sample = ids, vocabulary, block_size, block_size
        return dataset

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def __len__(self) -> int:
        return max(0, (len(self.ids) - 1) // self.block_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.block_size
        chunk = self.ids[start : start + self.block_size + 1].long()
        return chunk[:-1], chunk[1:]

    def decode(self, ids: torch.Tensor) -> str:
        return "".join(self.vocabulary[i] for i in ids.tolist())


def stdlib_files() -> list[Path]:
    """This Python's standard-library ``.py`` files, without tests, IDLE and installed packages, sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in _SKIPPED_FOLDERS]  # never walk site-packages
        files += [Path(folder, name) for name in names if name.endswith(".py")]
    return sorted(files, key=lambda path: path.relative_to(root).as_posix())


@functools.lru_cache(maxsize=2)  # the train and eval splits of one run encode the corpus once
def _encoded_corpus(corpus: str, seed: int) -> tuple[torch.Tensor, str]:
    files = stdlib_files()
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
    # Shuffled so the last eval_fraction is many modules, not the alphabet's tail; undecodable bytes become U+FFFD.
    texts = [files[i].read_text(encoding="utf-8", errors="replace") for i in order]
    return encode("".join(text if text.endswith("\n") else text + "\n" for text in texts))


def char_text(
    path: str | None = None,
    block_size: int = 64,
    split: str = "train",
    eval_fraction: float = 0.1,
    corpus: str | None = None,
    seed: int = 0,
) -> CharTextDataset:
    """The first ``1 - eval_fraction`` of the text (``split="train"``) or the rest (``"eval"``).

    The text is the file at ``path``, or with ``corpus="python-stdlib"`` this Python's standard
    library: its ``.py`` files (about 11M characters; no ``test``/``tests``/``idlelib``/
    ``site-packages`` folders) concatenated in an order shuffled with ``seed``. Both splits share
    the vocabulary of the whole text, so one model fits both.

    Args:
        path: A UTF-8 text file. Give this or ``corpus``.
        block_size: Characters per sample.
        split: ``"train"`` or ``"eval"``.
        eval_fraction: The share of the text, at its end, that is the eval split.
        corpus: ``"python-stdlib"``. Give this or ``path``.
        seed: Orders the corpus's files (unused with ``path``).

    Raises:
        FileNotFoundError: Naming the path, when the file does not exist.
        ValueError: When neither or both of ``path`` and ``corpus`` are given, or an argument is out of range.

    Example:
        >>> train = char_text(corpus="python-stdlib", block_size=128)
        >>> train.vocab_size == char_text(corpus="python-stdlib", split="eval").vocab_size
        True
    """
    if (path is None) == (corpus is None):
        raise ValueError(
            f"char_text: give exactly one of path (a UTF-8 text file) and corpus ({', '.join(map(repr, CORPORA))}), "
            f"got path={path!r} and corpus={corpus!r}"
        )
    if corpus is not None and corpus not in CORPORA:
        raise ValueError(f"char_text: corpus must be one of {', '.join(map(repr, CORPORA))}, got {corpus!r}")
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must lie in (0, 1), got {eval_fraction!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an int >= 1, got {block_size!r}")
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"char_text: no text file at {str(file)!r}; give path: a UTF-8 text file")
        ids, vocabulary = encode(file.read_text(encoding="utf-8"))
        source = repr(str(file))
    else:
        assert corpus is not None
        ids, vocabulary = _encoded_corpus(corpus, seed)
        source = f"corpus {corpus!r}"
    cut = int(len(ids) * (1 - eval_fraction))
    dataset = CharTextDataset._from_ids(ids[:cut] if split == "train" else ids[cut:], vocabulary, block_size)
    if len(dataset) == 0:
        raise ValueError(f"char_text: the {split} split of {source} is shorter than block_size={block_size} + 1 characters")
    return dataset
