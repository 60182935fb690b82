"""Package attributes that import their module on first use, so a command loads only what it uses."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``: each name in ``where`` loads from its module.

    Any other name is tried as a submodule (``package.name``), as when the package imported everything eagerly.

    Example:
        >>> getattr_, dir_ = lazy_attributes("json", {"JSONDecoder": "json.decoder"})
        >>> getattr_("JSONDecoder").__module__
        'json.decoder'
        >>> getattr_("no_such_name")  # not listed, and no submodule json.no_such_name
        Traceback (most recent call last):
        ...
        AttributeError: module 'json' has no attribute 'no_such_name'
    """

    def __getattr__(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
            setattr(sys.modules[package], name, value)  # later lookups skip this function
            return value
        if not name.startswith("__"):
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as error:
                if error.name != f"{package}.{name}":
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
