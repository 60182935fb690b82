"""Components a config can name: built-ins by name, anything else by ``package.module:callable``.

Each built-in's schema, and the trainer's, is generated from its constructor's signature, so the YAML
keys are exactly the Python keyword arguments and the two cannot drift apart. Arguments typed ``Time`` take a time
string, checked by the Time parser when the config is validated.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    model_validator,
)

from composer_swa.time import Time, TimeUnit

__all__ = ["FILLED_BY_BUILDER", "ImportedComponent", "component_union", "import_callable", "signature_fields", "signature_model"]

IMPORT_TAG = "name=<import path>"
#: Arguments the builder passes itself (an optimizer's parameters, a scheduler's optimizer); no
#: component's config can set them.
FILLED_BY_BUILDER = frozenset({"params", "optimizer"})


def _check_time(value: str | int) -> str | int:
    # TypeError (a fraction in a whole unit, "0.5ep") must become ValueError: pydantic reports only
    # ValueError and AssertionError as validation errors, and lets anything else out as a traceback.
    try:
        if isinstance(value, str):
            Time.from_timestring(value)  # names the string and the allowed units
        else:
            Time(value, TimeUnit.BATCH)  # an int is batches; refuses a negative one
    except TypeError as error:
        raise ValueError(str(error)) from None
    return value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"a time is a string like '5ba' or an int, got {value!r}")
    return value


TimeString = Annotated[str | int, BeforeValidator(_not_bool), AfterValidator(_check_time)]


def _yaml_type(annotation: Any) -> Any:
    """The pydantic type for one constructor argument: Time → a checked time string; unknown → Any."""
    if annotation is Time:
        return TimeString
    args = typing.get_args(annotation)
    if Time in args:
        return TimeString | None if type(None) in args else TimeString
    if str in args and Path in args:  # YAML gives a path as a string: one type, one error message
        annotation = Union[tuple(arg for arg in args if arg is not Path)]  # noqa: UP007 - a runtime tuple of members
    usable = _with_schema(annotation)
    return Any if usable is None else usable


def _with_schema(annotation: Any) -> Any:
    """``annotation`` without the parts pydantic has no schema for, or None if nothing is left.

    torch annotates ``lr: float | Tensor`` and ``betas: tuple[float | Tensor, float | Tensor]``; YAML
    cannot give a Tensor, so these become ``float`` and ``tuple[float, float]``, and ``lr: 0.1x`` is
    refused with its YAML path instead of failing inside the optimizer.
    """
    try:
        TypeAdapter(annotation)
        return annotation
    except Exception:  # no schema (Tensor, ParamsT), or a form pydantic does not take
        pass
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        kept = [usable for usable in map(_with_schema, args) if usable is not None]
        return Union[tuple(kept)] if kept else None  # noqa: UP007 - a runtime tuple of members
    if origin is None or not args:
        return None
    mapped = [arg if arg is Ellipsis else _with_schema(arg) for arg in args]
    if any(arg is None for arg in mapped):
        return None
    try:
        rebuilt = origin[tuple(mapped)]
        TypeAdapter(rebuilt)
    except Exception:
        return None
    return rebuilt


def _parameters(factory: Callable[..., Any]) -> tuple[list[inspect.Parameter], dict[str, Any]]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        hints = {}
    parameters = [p for p in inspect.signature(factory).parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return parameters, hints


class _Strict(BaseModel):
    """Unknown keys are an error that names them, suggests the nearest known key, and lists the rest."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            unknown = [key for key in data if key not in known]
            if unknown:
                hints = []
                for key in unknown:
                    close = difflib.get_close_matches(str(key), sorted(known), n=1)
                    hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
                allowed = ", ".join(sorted(known - {"name"}))
                raise ValueError(f"unknown key {', '.join(hints)}; {cls.__name__} takes: {allowed}")
        return data


def signature_fields(
    factory: Callable[..., Any], skip: frozenset[str] = FILLED_BY_BUILDER, optional: bool = False
) -> dict[str, Any]:
    """The pydantic fields of ``factory``'s keyword arguments but ``skip``, named as the arguments are.

    With ``optional``, required arguments may be left out (the builder fills them: a model's ``vocab_size``).
    """
    fields: dict[str, Any] = {}
    parameters, hints = _parameters(factory)
    for parameter in (p for p in parameters if p.name not in skip | {"self"}):
        annotation = _yaml_type(hints.get(parameter.name, Any))
        if parameter.default is inspect.Parameter.empty:
            fields[parameter.name] = (annotation | None, None) if optional else (annotation, ...)
        else:
            fields[parameter.name] = (annotation, parameter.default)
    return fields


def signature_model(
    factory: Callable[..., Any],
    title: str,
    optional: bool = False,
    base: type[BaseModel] = _Strict,
    construct_to_check: bool = False,
) -> type[BaseModel]:
    """A pydantic model of ``name`` plus ``factory``'s keyword arguments (see :func:`signature_fields`).

    With ``construct_to_check``, validation also calls ``factory`` once, so the constructor's own
    checks (``swa_start`` before ``swa_end``) report with the YAML path; use it for cheap constructors only.
    """

    def constructs(config: BaseModel) -> BaseModel:
        factory(**config.model_dump(exclude={"name"}))
        return config

    validators: dict[str, Any] = {"constructs": model_validator(mode="after")(constructs)} if construct_to_check else {}
    fields: dict[str, Any] = {"name": (str, ...)} | signature_fields(factory, optional=optional)
    return create_model(title, __base__=base, __validators__=validators, **fields)


def _search_path(config_dir: Path | None) -> list[str]:
    extra = [str(Path.cwd())] + ([str(config_dir)] if config_dir is not None else [])
    return [entry for entry in extra if entry not in sys.path]


def import_callable(path: str, config_dir: Path | None = None) -> Callable[..., Any]:
    """``"package.module:callable"`` → the callable; the current folder and the config's folder are searched too."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"an import path is 'package.module:callable', got {path!r}")
    added = _search_path(config_dir)
    sys.path[:0] = added
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ValueError(f"cannot import module {module_name!r} for {path!r}: {error}") from None
    except Exception as error:
        raise ValueError(f"importing module {module_name!r} for {path!r} raised {type(error).__name__}: {error}") from None
    finally:
        for entry in added:
            sys.path.remove(entry)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r} (from {path!r})")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{path!r} is not callable")
    return typing.cast(Callable[..., Any], target)


class ImportedComponent(BaseModel):
    """A user's own component: ``name: package.module:callable`` plus its keyword arguments.

    The import and the keyword arguments are checked when the config is validated.
    """

    model_config = ConfigDict(extra="allow")
    name: str
    #: Keys the component takes besides the callable's arguments (a dataset's loader keys).
    also_takes: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _imports(self, info: ValidationInfo) -> ImportedComponent:
        if info.context is not None and "config_dir" in info.context:  # validate_config passes it
            self.check(info.context["config_dir"], skip=FILLED_BY_BUILDER)
        return self

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def check(self, config_dir: Path | None, skip: frozenset[str]) -> Callable[..., Any]:
        factory = import_callable(self.name, config_dir)
        parameters, _ = _parameters(factory)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
        names = {p.name for p in parameters} - skip
        unknown = sorted(set(self.kwargs) - names)
        if unknown and not accepts_any:
            takes = ", ".join(sorted(names)) or "no arguments"
            also = f"; and the keys {', '.join(sorted(self.also_takes))}" if self.also_takes else ""
            raise ValueError(f"{self.name} takes no argument {', '.join(map(repr, unknown))}; it takes: {takes}{also}")
        problems = _type_problems(factory, {key: value for key, value in self.kwargs.items() if key in names})
        if problems:
            raise ValueError("; ".join(problems))
        return factory


def _type_problems(factory: Callable[..., Any], kwargs: dict[str, Any]) -> list[str]:
    """``kwargs`` checked against the annotations of ``factory``, each problem naming its key.

    A user's ``max_norm: float`` given ``"x"`` is reported as ``max_norm: Input should be a valid
    number``, not as the TypeError the user's code would raise deep inside. Unannotated arguments,
    and types pydantic has no schema for, take anything.
    """
    parameters, hints = _parameters(factory)
    fields: dict[str, Any] = {p.name: (_yaml_type(hints.get(p.name, Any)), ...) for p in parameters if p.name in kwargs}
    if not fields:
        return []
    try:
        create_model("arguments", __config__=ConfigDict(arbitrary_types_allowed=True), **fields).model_validate(kwargs)
    except ValidationError as error:
        return [f"{_key(e['loc'])}: {e['msg']} (got {_short(e['input'])})" for e in error.errors()]
    except Exception:  # an annotation pydantic cannot build a model from: the factory checks its own arguments
        return []
    return []


def _key(location: tuple[Any, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text):,} characters)"


def component_union(kind: str, models: dict[str, type[BaseModel]], imported: type[BaseModel] = ImportedComponent) -> Any:
    """A tagged union over the built-in ``models`` (by lower-case ``name``) and import paths."""

    def pick(value: Any) -> str | None:
        name = value.get("name") if isinstance(value, dict) else getattr(value, "name", None)
        if not isinstance(name, str):
            return None
        if ":" in name:
            return IMPORT_TAG
        return f"name={name.lower()}" if name.lower() in models else None

    members = [Annotated[model, Tag(f"name={key}")] for key, model in models.items()]
    members.append(Annotated[imported, Tag(IMPORT_TAG)])
    choices = ", ".join(sorted(models)) or "(no built-ins)"
    return Annotated[
        Union[tuple(members)],  # noqa: UP007 - a runtime tuple of members
        Discriminator(
            pick,
            custom_error_type="unknown_component",
            custom_error_message=f"unknown {kind}: name must be one of {choices}, or an import path 'package.module:callable'",
        ),
    ]
