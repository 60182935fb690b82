"""char_text: the vectorised encoding against the per-character one, and the Python standard library corpus."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from composer_swa.config import build_run, validate_config
from composer_swa.data.char_text import CharTextDataset, _encoded_corpus, char_text, encode
from composer_swa.models import CharGPT


def per_character(text: str) -> tuple[list[int], str]:
    """The reference: the old dictionary look-up per character."""
    vocabulary = "".join(sorted(set(text)))
    index = {char: i for i, char in enumerate(vocabulary)}
    return [index[char] for char in text], vocabulary


def as_text(dataset: CharTextDataset) -> str:
    code_points = np.frombuffer(dataset.vocabulary.encode("utf-32-le"), dtype=np.uint32)
    return code_points[dataset.ids.numpy()].tobytes().decode("utf-32-le")


def stdlib_texts() -> list[str]:
    """Each standard-library file's text, found here with rglob: no test, tests, idlelib or site-packages folder."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skipped = {"test", "tests", "idlelib", "site-packages", "dist-packages"}
    paths = list(root.glob("*.py"))
    for folder in root.iterdir():
        if folder.is_dir() and folder.name not in skipped:  # not rglob from root: site-packages is large
            paths += [path for path in folder.rglob("*.py") if not skipped.intersection(path.relative_to(root).parts)]
    texts = []
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text if text.endswith("\n") else text + "\n")
    return texts


@pytest.mark.parametrize("text", ["hello world", "a\U0001f600b\u00e9\ufffd\n\udcff x", ""])
def test_the_vectorised_encoding_equals_the_per_character_one(text: str) -> None:
    ids, vocabulary = encode(text)
    assert (ids.tolist(), vocabulary) == per_character(text) and ids.dtype == torch.int32
    data = CharTextDataset(text + "!!", block_size=2, vocabulary="!" + vocabulary)  # a vocabulary not sorted
    assert data.ids.tolist() == [("!" + vocabulary).index(char) for char in text + "!!"]
    with pytest.raises(ValueError, match=r"characters outside the vocabulary: \['q', 'z'\]"):
        encode(text + "zqz", vocabulary)
    if len(text) > 2:
        assert data[0][0].dtype == torch.int64 and data.decode(data[0][0]) == text[:2]


def test_the_stdlib_corpus_is_every_file_once_in_a_seeded_order() -> None:
    train, evaluation = char_text(corpus="python-stdlib"), char_text(corpus="python-stdlib", split="eval")
    whole = as_text(train) + as_text(evaluation)
    texts = stdlib_texts()
    assert len(whole) == sum(map(len, texts)) > 10_000_000  # every file, no test files
    assert train.vocabulary == evaluation.vocabulary == "".join(sorted(set(whole)))  # one vocabulary: the whole text's
    index = {char: i for i, char in enumerate(train.vocabulary)}
    assert evaluation.ids.tolist() == [index[char] for char in whole[len(train.ids) :]]  # the per-character encoding
    assert len(train.ids) == int(len(whole) * 0.9)
    # The eval split is many modules, whole, not the alphabet's tail.
    evaluation_text = as_text(evaluation)
    assert sum(text in evaluation_text for text in texts if len(text) > 2000) >= 20
    _encoded_corpus.cache_clear()  # read and shuffled again: the same order for the same seed
    assert torch.equal(char_text(corpus="python-stdlib", split="eval").ids, evaluation.ids)
    other = char_text(corpus="python-stdlib", split="eval", seed=1)
    assert not torch.equal(other.ids[:1000], evaluation.ids[:1000]) and other.vocabulary == evaluation.vocabulary


def test_exactly_one_of_path_and_corpus(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("abc" * 50)
    for path, corpus in ((None, None), (str(tmp_path / "t.txt"), "python-stdlib")):
        with pytest.raises(ValueError, match=f"give exactly one of path .* and corpus \\('python-stdlib'\\), got path={path!r}"):
            char_text(path, corpus=corpus)
    with pytest.raises(ValueError, match="corpus must be one of 'python-stdlib', got 'python'"):
        char_text(corpus="python")


def test_a_config_names_the_corpus() -> None:
    lm = {
        "model": {"name": "char_gpt", "width": 16, "heads": 2, "layers": 1},
        "data": {"train": {"name": "char_text", "corpus": "python-stdlib", "seed": 3, "block_size": 32}},
        "optimizer": {"name": "adamw", "lr": 0.01},
        "trainer": {"max_duration": "2ba", "progress_bar": False},
    }
    model = build_run(validate_config(lm, "t")).model
    assert isinstance(model, CharGPT) and model.token_embedding.num_embeddings == char_text(corpus="python-stdlib").vocab_size
