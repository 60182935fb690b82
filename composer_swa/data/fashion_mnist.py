"""Fashion-MNIST (Xiao et al. 2017, https://arxiv.org/abs/1708.07747), read from its four IDX files.

Nothing is downloaded. The files are looked for in ``root`` when given, else in the folder named by
the ``COMPOSER_SWA_FASHION_MNIST`` environment variable when set, else in
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package) and then in
``~/.cache/composer_swa/fashion-mnist`` (``$XDG_CACHE_HOME`` when set), the first that holds them.

Augmentation (a shift by up to 2 pixels with zero padding, and a horizontal flip) draws from
torch's default generator inside ``__getitem__``: in the main process that is the generator the
Trainer seeds and checkpoints, and in a ``DataLoader`` worker it is seeded per epoch from the
loader's generator (``base_seed + worker_id``). Either way a resumed run re-draws the same
augmentations, because the Trainer restores those generators and re-draws the consumed batches.
(A key of (seed, epoch, index) would need the epoch, which a map-style dataset is never told, or a
custom sampler in every ``DataLoader``, which ``DistributedSampler`` sharding would replace.)
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["FashionMNIST", "fashion_mnist"]

#: Mean and standard deviation of the 60,000 training images' pixels, scaled to [0, 1].
MEAN, STD = 0.2860, 0.3530
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049  # 0x0803: ubyte, 3 dims; 0x0801: ubyte, 1 dim
_SHIFT = 2  # pixels, each way
_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
_ENV = "COMPOSER_SWA_FASHION_MNIST"


def _cache_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "composer_swa" / "fashion-mnist"


def _how_to_get(folder: str) -> str:
    names = ", ".join(_FILES["train"] + _FILES["test"])
    return (
        f"install Debian's package (apt-get install dataset-fashion-mnist, files in {str(_DEBIAN)!r}), or place the four "
        f"files of the official release (https://github.com/zalandoresearch/fashion-mnist: {names}) "
        f"in {folder!r} (or pass root=, or set {_ENV})"
    )


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds the four files: ``root``, ``$COMPOSER_SWA_FASHION_MNIST``, Debian's, the cache.

    Raises:
        FileNotFoundError: Naming the folder(s) searched and both ways to get the files.
    """
    explicit = root if root is not None else os.environ.get(_ENV) or None
    candidates = [Path(explicit).expanduser()] if explicit is not None else [_DEBIAN, _cache_folder()]
    for folder in candidates:
        missing = [name for name in _FILES["train"] + _FILES["test"] if not (folder / name).is_file()]
        if not missing:
            return folder
        if explicit is not None and folder.is_dir():
            raise FileNotFoundError(f"fashion_mnist: {str(folder)!r} lacks {', '.join(missing)}; {_how_to_get(str(folder))}")
    searched = " or ".join(repr(str(folder)) for folder in candidates)
    raise FileNotFoundError(f"fashion_mnist: no Fashion-MNIST files in {searched}; {_how_to_get(str(candidates[-1]))}")


@functools.lru_cache(maxsize=4)  # train and test are read once each, however many datasets are built
def _read_idx(path: Path, magic: int, modified: int) -> np.ndarray:
    """The array in one gzipped IDX file of unsigned bytes, after checking its header against its length."""
    del modified  # part of the cache key only: a replaced file is read again
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"fashion_mnist: {str(path)!r} is not a complete gzip file ({error}); fetch it again") from error
    dims = magic - 0x0800
    if len(data) < 4 + 4 * dims:
        raise ValueError(f"fashion_mnist: {str(path)!r} is {len(data)} bytes, shorter than its header; fetch it again")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(
            f"fashion_mnist: {str(path)!r} starts with magic number {found}, expected {magic} "
            f"({'images: ubyte, 3 dims' if magic == _IMAGES_MAGIC else 'labels: ubyte, 1 dim'}); is it the right file?"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    if dims == 3 and shape[1:] != (28, 28):
        raise ValueError(f"fashion_mnist: {str(path)!r} holds images of {shape[1]}x{shape[2]} pixels, expected 28x28")
    expected = 4 + 4 * dims + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(
            f"fashion_mnist: {str(path)!r} has {len(data)} bytes after decompression, its header {shape} "
            f"needs {expected}; the file is truncated or damaged, fetch it again"
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    array.flags.writeable = False  # shared through the cache
    return array


def read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 28, 28] uint8, labels [N] uint8)`` of one split, checked against each other."""
    images_name, labels_name = _FILES[split]
    images_path, labels_path = folder / images_name, folder / labels_name
    images = _read_idx(images_path, _IMAGES_MAGIC, images_path.stat().st_mtime_ns)
    labels = _read_idx(labels_path, _LABELS_MAGIC, labels_path.stat().st_mtime_ns)
    if len(images) != len(labels):
        raise ValueError(
            f"fashion_mnist: {str(images_path)!r} has {len(images)} images but {str(labels_path)!r} {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"fashion_mnist: {str(labels_path)!r} has label {int(labels.max())}, expected 0-9")
    return images, labels


class FashionMNIST(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``(image [1, 28, 28] float32, label int64)`` pairs, normalised with the training set's mean and std.

    Args:
        images: ``[N, 28, 28]`` unsigned bytes.
        labels: ``[N]`` class ids, 0 to 9.
        augment: Shift each image by up to 2 pixels each way and mirror it half the time, anew each draw.

    Example:
        >>> data = FashionMNIST(np.zeros((2, 28, 28), np.uint8), np.array([3, 7], np.uint8))
        >>> image, label = data[1]
        >>> image.shape, image.dtype, label
        (torch.Size([1, 28, 28]), torch.float32, tensor(7))
    """

    num_classes = 10  # read by the config builder

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: bool = False) -> None:
        # Stored padded once, so a shifted image is a window of it rather than a new padding per draw.
        self._padded = torch.nn.functional.pad(torch.from_numpy(np.array(images, dtype=np.uint8)).unsqueeze(1), (_SHIFT,) * 4)
        self.images = self._padded[:, 0, _SHIFT:-_SHIFT, _SHIFT:-_SHIFT]  # [N, 28, 28] uint8, a view
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.augment:
            # One draw per sample: 25 shifts x 2 mirrorings.
            shift, flip = divmod(int(torch.randint(0, (2 * _SHIFT + 1) ** 2 * 2, ())), 2)
            dy, dx = divmod(shift, 2 * _SHIFT + 1)
            # The window of the zero-padded image that puts its content dy - 2 rows down, dx - 2 columns right.
            image = self._padded[index, :, 2 * _SHIFT - dy : 2 * _SHIFT - dy + 28, 2 * _SHIFT - dx : 2 * _SHIFT - dx + 28]
            image = image.flip(-1) if flip else image
        else:
            image = self._padded[index, :, _SHIFT:-_SHIFT, _SHIFT:-_SHIFT]
        return (image.float() - 255 * MEAN) / (255 * STD), self.labels[index]


def fashion_mnist(
    split: str = "train",
    root: str | None = None,
    subset: int | None = None,
    seed: int = 0,
    augment: bool = False,
) -> FashionMNIST:
    """One split of Fashion-MNIST: ``"train"`` (60,000 images) or ``"test"`` (10,000).

    Args:
        split: ``"train"`` or ``"test"``.
        root: The folder of the four ``*-ubyte.gz`` files; by default see the module's docstring.
        subset: Keep this many images, the first ``subset`` of a permutation seeded with ``seed``
            (in file order; a larger subset of one seed contains the smaller).
        seed: Seeds the subset. Augmentation follows the run's seed (see the module's docstring).
        augment: Random shift (up to 2 pixels, zero padding) and horizontal flip per draw.

    Raises:
        FileNotFoundError: When no folder holds the files, naming both ways to get them.
        ValueError: When a file is truncated or is not the expected IDX file, naming it.

    Example:
        >>> len(fashion_mnist("test")), len(fashion_mnist("train", subset=1000))
        (10000, 1000)
    """
    if split not in _FILES:
        raise ValueError(f"fashion_mnist: split must be 'train' or 'test', got {split!r}")
    images, labels = read_split(resolve_root(root), split)
    if subset is not None:
        if isinstance(subset, bool) or not isinstance(subset, int) or not 1 <= subset <= len(labels):
            raise ValueError(f"fashion_mnist: subset must be an int in [1, {len(labels)}] or None, got {subset!r}")
        chosen = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:subset].sort().values.numpy()
        images, labels = images[chosen], labels[chosen]
    return FashionMNIST(images, labels, augment=augment)
