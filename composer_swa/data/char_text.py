"""A character-level language-modelling dataset over any UTF-8 text file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

__all__ = ["CharTextDataset", "char_text"]


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
        self.vocabulary = vocabulary if vocabulary is not None else "".join(sorted(set(text)))
        index = {char: i for i, char in enumerate(self.vocabulary)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(f"the text has characters outside the vocabulary: {unknown[:10]!r}")
        self.ids = torch.tensor([index[char] for char in text], dtype=torch.long)
        self.block_size = block_size
        self.tokens_per_sample = block_size

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def __len__(self) -> int:
        return max(0, (len(self.ids) - 1) // self.block_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.block_size
        chunk = self.ids[start : start + self.block_size + 1]
        return chunk[:-1], chunk[1:]

    def decode(self, ids: torch.Tensor) -> str:
        return "".join(self.vocabulary[i] for i in ids.tolist())


def char_text(path: str, block_size: int = 64, split: str = "train", eval_fraction: float = 0.1) -> CharTextDataset:
    """The first ``1 - eval_fraction`` of the file (``split="train"``) or the rest (``"eval"``).

    Both splits share the vocabulary of the whole file, so one model fits both.

    Raises:
        FileNotFoundError: Naming the path, when the file does not exist.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"char_text: no text file at {str(file)!r}; give path: a UTF-8 text file")
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must lie in (0, 1), got {eval_fraction!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an int >= 1, got {block_size!r}")
    text = file.read_text(encoding="utf-8")
    vocabulary = "".join(sorted(set(text)))
    cut = int(len(text) * (1 - eval_fraction))
    dataset = CharTextDataset(text[:cut] if split == "train" else text[cut:], block_size, vocabulary)
    if len(dataset) == 0:
        raise ValueError(f"char_text: the {split} split of {str(file)!r} is shorter than block_size={block_size} + 1 characters")
    return dataset
