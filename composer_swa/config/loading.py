"""Reading a config: YAML with line numbers, ``--set`` overrides, validation into one error message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from composer_swa.config.schema import RunConfig
from composer_swa.config.yaml_reader import YamlRefused, read_yaml_text

__all__ = ["ConfigError", "apply_overrides", "load_config", "read_yaml", "validate_config"]


class ConfigError(ValueError):
    """Everything wrong with a config, one problem per line, each with its YAML path.

    Example:
        >>> print(ConfigError("run.yaml", ["trainer.max_duration: field required"]))
        run.yaml is not a valid config:
          trainer.max_duration: field required
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source} is not a valid config:\n" + "\n".join(f"  {problem}" for problem in problems))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file; a missing file or bad YAML is a :class:`ConfigError` with the line."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(str(file), [f"no such file: {str(file)!r}; give the path to a YAML config"])
    try:
        data = read_yaml_text(file.read_text(encoding="utf-8"))
    except YamlRefused as error:
        raise ConfigError(str(file), [str(error)]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
        raise ConfigError(str(file), [f"YAML syntax error at {where}: {error.problem or error}"]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(str(file), [f"cannot read YAML: {error}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(file), [f"the file must hold a mapping of sections (model, data, ...), got {type(data).__name__}"])
    return data


_PATH_PART = re.compile(r"([^.\[\]]+)|\[([0-9]+)\]")


def _shorten(value: object) -> str:
    """``repr(value)``, at most about 80 characters: error messages quote inputs, which may be huge."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        return "a huge integer"
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"


def _path_part(key: str, index: str) -> str | int:
    """One part of a ``--set`` key path: a list index (``[0]`` or ``.0``) or a mapping key."""
    digits = index or (key if key.isascii() and key.isdigit() else "")
    if not digits:
        return key
    if len(digits) > 9:
        raise ValueError(f"the list index {_shorten(digits)} is too large")
    return int(digits)


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str = "--set") -> dict[str, Any]:
    """Applies ``key.path=value`` overrides; the value is read as YAML (``0.1``, ``true``, ``[1, 2]``).

    List items are addressed as ``algorithms.0.swa_start`` or ``algorithms[0].swa_start``.

    Example:
        >>> apply_overrides({"trainer": {"seed": 0}}, ["trainer.seed=3", "algorithms[0]={name: swa}"])
        {'trainer': {'seed': 3}, 'algorithms': [{'name': 'swa'}]}
    """
    problems = []
    for override in overrides:
        key_path, sep, raw = override.partition("=")
        shown = _shorten(override)
        try:
            parts = [_path_part(key, index) for key, index in _PATH_PART.findall(key_path)]
        except ValueError as error:
            problems.append(f"--set {shown}: {error}")
            continue
        if not sep or not parts:
            problems.append(f"--set {shown}: expected key.path=value, e.g. trainer.seed=1")
            continue
        try:
            value = read_yaml_text(raw, prefix=parts)
        except YamlRefused as error:
            problems.append(f"--set {shown}: {error}")
            continue
        except yaml.YAMLError as error:
            problems.append(f"--set {shown}: the value is not valid YAML ({error})")
            continue
        target: Any = data
        for position, part in enumerate(parts):
            last = position == len(parts) - 1
            here = ".".join(map(str, parts[: position + 1]))
            if isinstance(part, int):
                if not isinstance(target, list):
                    target = None
                elif part == len(target):
                    target.append({} if not last else None)
                elif part > len(target):
                    problems.append(f"--set {shown}: {here} is past the end of a list of {len(target)}")
                    break
            elif not isinstance(target, dict):
                target = None
            if target is None:
                problems.append(f"--set {shown}: {here} goes inside something that is not a mapping or list")
                break
            if last:
                target[part] = value
            else:
                if isinstance(target, dict) and part not in target:
                    target[part] = [] if isinstance(parts[position + 1], int) else {}
                target = target[part]
    if problems:
        raise ConfigError(source, problems)
    return data


def _yaml_path(location: tuple[str | int, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith("name="):  # the tag of a component union is not part of the YAML path
            path += f".{part}" if path else part
    return path or "(top level)"


def _describe(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "unknown_component" and isinstance(error.get("input"), dict):
        message += f"; got {_shorten(error['input'].get('name'))}"
    elif error["type"] == "missing":
        message = "required, but missing"
    elif not isinstance(error.get("input"), (dict, list)) and error["type"] not in ("value_error", "assertion_error"):
        message += f" (got {_shorten(error['input'])})"
    if len(message) > 1000:  # a message that quotes a huge input must not become huge itself
        message = f"{message[:500]}... ({len(message):,} characters)"
    return f"{_yaml_path(error['loc'])}: {message}"


def validate_config(data: dict[str, Any], source: str, config_dir: Path | None = None) -> RunConfig:
    """A :class:`RunConfig`, or a :class:`ConfigError` listing every problem with its YAML path.

    Import paths are imported here too (from the current folder and ``config_dir`` as well), so a
    module that does not import is a config error like any other.
    """
    try:
        return RunConfig.model_validate(data, context={"config_dir": config_dir})
    except ValidationError as error:
        raise ConfigError(source, [_describe(e) for e in error.errors()]) from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Reads, overrides and validates a YAML config.

    Raises:
        ConfigError: Every problem at once, each with its YAML path.
    """
    data = apply_overrides(read_yaml(path), list(overrides))
    return validate_config(data, str(path), Path(path).resolve().parent)
