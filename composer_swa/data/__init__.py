"""Built-in datasets, generated locally (nothing is downloaded at run time)."""

from composer_swa.data.mnist1d import mnist1d_datasets

__all__ = ["mnist1d_datasets"]
