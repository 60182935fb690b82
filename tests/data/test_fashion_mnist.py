"""Fashion-MNIST: the IDX reader on the real files and on small files written here, subsets, augmentation, resume."""

from __future__ import annotations

import gzip
import importlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from composer_swa import SWA, Trainer
from composer_swa.checkpoint import TrainingPreempted, list_checkpoints
from composer_swa.config import build_run, validate_config
from composer_swa.data.fashion_mnist import FashionMNIST, fashion_mnist
from composer_swa.models import FashionCNN
from tests.checkpoint.resume_run import SignalSelf, final_weights
from tests.helpers import assert_equal_weights

fashion_module = importlib.import_module("composer_swa.data.fashion_mnist")  # the package's attribute is the function
FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def numpy_idx(path: Path, header: int) -> np.ndarray:
    """The reference reader: the bytes after the header, nothing checked."""
    with gzip.open(path) as file:
        return np.frombuffer(file.read(), dtype=np.uint8)[header:]


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_folder(folder: Path, train: int = 6, test: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four small IDX files; returns the training images and labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in (("train", train), ("t10k", test)):
        images, labels = rng.integers(0, 256, (count, 28, 28)), rng.integers(0, 10, count)
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(2051, images)))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(2049, labels)))
        arrays[split] = images, labels
    return arrays["train"]


def test_the_real_files_read_as_numpy_reads_them() -> None:
    real = fashion_module.resolve_root()  # Debian's dataset-fashion-mnist, which .ci/run installs, or the cache folder
    train, test = fashion_mnist("train"), fashion_mnist("test")
    assert (len(train), len(test)) == (60000, 10000)
    reference = numpy_idx(real / FILES[0], 16).reshape(60000, 28, 28)
    assert train.images.dtype == torch.uint8 and np.array_equal(train.images.numpy(), reference)
    assert train.labels.dtype == torch.int64 and np.array_equal(train.labels.numpy(), numpy_idx(real / FILES[1], 8))
    assert train.labels.bincount().tolist() == [6000] * 10 and test.labels.bincount().tolist() == [1000] * 10
    # The normalisation constants are the training pixels' own mean and std.
    pixels = reference / 255.0
    assert abs(pixels.mean() - fashion_module.MEAN) < 1e-4 and abs(pixels.std() - fashion_module.STD) < 1e-4
    image, label = train[123]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and label.dtype == torch.int64
    np.testing.assert_allclose(image[0].numpy(), (reference[123] / 255 - 0.2860) / 0.3530, rtol=0, atol=1e-5)


def test_small_files_written_here_are_read_back(tmp_path: Path) -> None:
    images, labels = write_folder(tmp_path)
    data = fashion_mnist("train", root=str(tmp_path))
    assert np.array_equal(data.images.numpy(), images) and np.array_equal(data.labels.numpy(), labels)
    assert len(fashion_mnist("test", root=str(tmp_path))) == 4


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: gzip.compress(raw[:-10]), r"has 4710 bytes after decompression, its header \(6, 28, 28\) needs 4720"),
        (lambda raw: gzip.compress(raw[:10]), "shorter than its header"),
        (lambda raw: gzip.compress(raw)[:-20], "is not a complete gzip file"),
        (lambda raw: raw, "is not a complete gzip file"),  # not compressed at all
        (lambda raw: gzip.compress(b"\x00\x00\x08\x01" + raw[4:]), r"magic number 2049, expected 2051 \(images"),
        (lambda raw: gzip.compress(idx_bytes(2051, np.zeros((6, 32, 32)))), "images of 32x32 pixels, expected 28x28"),
        (lambda raw: gzip.compress(idx_bytes(2051, np.zeros((5, 28, 28)))), "has 5 images but .* 6 labels"),
    ],
)
def test_a_damaged_or_wrong_images_file_is_a_clear_error(tmp_path: Path, damage: Callable[[bytes], bytes], message: str) -> None:
    write_folder(tmp_path)
    path = tmp_path / FILES[0]
    path.write_bytes(damage(gzip.decompress(path.read_bytes())))
    with pytest.raises(ValueError, match=message) as error:
        fashion_mnist("train", root=str(tmp_path))
    assert str(error.value).startswith("fashion_mnist: ") and repr(str(path)) in str(error.value)


def test_a_wrong_labels_file_is_a_clear_error(tmp_path: Path) -> None:
    write_folder(tmp_path)
    path = tmp_path / FILES[1]
    path.write_bytes(gzip.compress(idx_bytes(2049, np.full(6, 12))))
    with pytest.raises(ValueError, match=f"'{path}' has label 12, expected 0-9"):
        fashion_mnist("train", root=str(tmp_path))
    path.write_bytes(gzip.compress(idx_bytes(2051, np.zeros((6, 28, 28)))))  # images where labels belong
    with pytest.raises(ValueError, match=r"magic number 2051, expected 2049 \(labels"):
        fashion_mnist("train", root=str(tmp_path))


def test_missing_files_name_both_ways_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    both_ways = r"no Fashion-MNIST files in .*nowhere.*apt-get install dataset-fashion-mnist.*zalandoresearch/fashion-mnist"
    with pytest.raises(FileNotFoundError, match=both_ways):
        fashion_mnist(root=str(tmp_path / "nowhere"))
    write_folder(tmp_path)
    (tmp_path / FILES[3]).unlink()
    with pytest.raises(FileNotFoundError, match=f"'{tmp_path}' lacks t10k-labels-idx1-ubyte.gz; install Debian's package"):
        fashion_mnist(root=str(tmp_path))
    # Without root: the environment variable, else Debian's folder, else the cache folder.
    monkeypatch.delenv("COMPOSER_SWA_FASHION_MNIST", raising=False)
    monkeypatch.setattr(fashion_module, "_DEBIAN", tmp_path / "no-debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"no-debian' or '.*cache/composer_swa/fashion-mnist'; install"):
        fashion_mnist()
    write_folder(tmp_path / "cache" / "composer_swa" / "fashion-mnist", train=3)
    assert len(fashion_mnist()) == 3
    write_folder(tmp_path / "from-env", train=2)
    monkeypatch.setenv("COMPOSER_SWA_FASHION_MNIST", str(tmp_path / "from-env"))
    assert len(fashion_mnist()) == 2


def test_a_subset_is_seeded_nested_and_taken_from_the_split(tmp_path: Path) -> None:
    images, _ = write_folder(tmp_path, train=40)
    root = str(tmp_path)

    def rows(subset: int, seed: int) -> list[int]:
        data = fashion_mnist("train", root=root, subset=subset, seed=seed)
        return [int(np.flatnonzero((images == image.numpy()).all(axis=(1, 2)))[0]) for image in data.images]

    assert rows(10, seed=1) == rows(10, seed=1) != rows(10, seed=2)
    assert len(set(rows(10, seed=1))) == 10 and set(rows(10, seed=1)) < set(rows(20, seed=1))
    for wrong in (0, 41, True, 2.5):
        with pytest.raises(ValueError, match=rf"subset must be an int in \[1, 40\] or None, got {wrong!r}"):
            fashion_mnist("train", root=root, subset=wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'eval'"):
        fashion_mnist("eval", root=root)


def shifted_and_flipped(image: np.ndarray) -> list[np.ndarray]:
    """NumPy's 50 augmentations of one image: roll by up to 2 pixels each way, zero what wrapped round, mirror or not."""
    found = []
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            moved = np.roll(image, (dy, dx), axis=(0, 1))
            # Zero the rows and columns that wrapped round.
            moved[: max(dy, 0)] = 0
            moved[28 + min(dy, 0) :] = 0
            moved[:, : max(dx, 0)] = 0
            moved[:, 28 + min(dx, 0) :] = 0
            found += [moved, np.fliplr(moved)]
    return found


def test_augmentation_shifts_and_flips_as_numpy_does_and_is_seeded() -> None:
    image = np.random.default_rng(0).integers(0, 256, (1, 28, 28))
    data = FashionMNIST(image, np.array([4]), augment=True)
    candidates = [(c / 255 - 0.2860) / 0.3530 for c in shifted_and_flipped(image[0])]
    torch.manual_seed(5)
    drawn = [data[0][0][0].numpy() for _ in range(600)]
    close = np.abs(np.stack(drawn)[:, None] - np.stack(candidates)[None]).max(axis=(2, 3)) < 1e-5  # [draw, candidate]
    assert (close.sum(axis=1) == 1).all()  # each draw is exactly one of NumPy's augmentations
    assert close.any(axis=0).all()  # and every shift, mirrored or not, occurs
    torch.manual_seed(5)
    assert all(np.array_equal(data[0][0][0].numpy(), d) for d in drawn[:20])
    assert np.allclose(FashionMNIST(image, np.array([4]))[0][0][0].numpy(), candidates[2 * 12])  # off: unshifted


def augmented_run(folder: Path, stop: int | None = None, autoresume: bool = False, workers: int = 0) -> Trainer:
    generator = np.random.default_rng(1)
    data = FashionMNIST(generator.integers(0, 256, (96, 28, 28)), generator.integers(0, 10, 96), augment=True)
    torch.manual_seed(0)
    model = FashionCNN(channels=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    return Trainer(
        model,
        DataLoader(data, batch_size=8, shuffle=True, num_workers=workers),
        "2ep",
        optimizers=optimizer,
        algorithms=[SWA(swa_start="0.25dur", update_interval="2ba", swa_lr=0.02)],
        callbacks=[SignalSelf(stop, signal.SIGTERM)] if stop is not None else [],
        seed=0,
        progress_bar=False,
        loggers=[],
        save_folder=folder,
        save_interval="5ba",
        autoresume=autoresume,
    )


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny convolutions run far faster on one thread than on threads fighting other processes for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("workers", [0, 2])  # drawn from torch's generator in this process, or in each worker
def test_a_run_with_augmentation_stopped_mid_epoch_resumes_exactly(tmp_path: Path, workers: int) -> None:
    reference = augmented_run(tmp_path / "reference", workers=workers)
    reference.fit()
    stopped = augmented_run(tmp_path / "stopped", stop=17, workers=workers)
    with pytest.raises(TrainingPreempted):
        stopped.fit()
    assert list_checkpoints(tmp_path / "stopped")[-1].name == "ep1-ba17-rank0.pt"  # 5 batches into epoch 2

    resumed = augmented_run(tmp_path / "stopped", autoresume=True, workers=workers)
    resumed.fit()

    assert_equal_weights(final_weights(resumed), final_weights(reference))


def test_a_config_names_the_dataset_and_the_model(tmp_path: Path) -> None:
    write_folder(tmp_path, train=20)
    run = {
        "model": {"name": "fashion_cnn", "channels": 4},
        "data": {
            "train": {"name": "fashion_mnist", "root": str(tmp_path), "subset": 10, "augment": True, "batch_size": 5},
            "eval": {"name": "fashion_mnist", "root": str(tmp_path), "split": "test", "batch_size": 5},
        },
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
        "trainer": {"max_duration": "1ep", "progress_bar": False},
    }
    parts = build_run(validate_config(run, "t"))
    assert isinstance(parts.model, FashionCNN) and parts.model.classifier.out_features == 10
    assert len(parts.train_dataloader.dataset) == 10 and parts.train_dataloader.dataset.augment  # type: ignore[arg-type, attr-defined]
    images, _ = next(iter(parts.train_dataloader))
    assert images.shape == (5, 1, 28, 28) and parts.model(images).shape == (5, 10)
