"""Built-in datasets, generated locally or read from local files (nothing is downloaded at run time)."""

from composer_swa.data.char_text import CharTextDataset, char_text
from composer_swa.data.fashion_mnist import FashionMNIST, fashion_mnist
from composer_swa.data.mnist1d import mnist1d, mnist1d_datasets
from composer_swa.data.synthetic import synthetic_classification

__all__ = [
    "CharTextDataset",
    "FashionMNIST",
    "char_text",
    "fashion_mnist",
    "mnist1d",
    "mnist1d_datasets",
    "synthetic_classification",
]
