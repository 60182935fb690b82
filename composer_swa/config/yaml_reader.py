"""YAML for configs: PyYAML's safe loader, bounded, with every refusal naming its YAML path.

PyYAML accepts texts that break the code after it: an alias-expanded structure of 10^8 items
(billion laughs), an alias that contains itself, 5,000 nested ``[``, ``!!bool maybe`` (a KeyError
inside PyYAML), a 4,300-digit integer (Python's int limit), an unhashable key, and dates. This
reader refuses each with a :class:`YamlRefused` that names the place, and reads dates as the text
written: no config value is a date, and ``run_dir: 2024-01-01`` means that folder name.

Example:
    >>> read_yaml_text("base: &b {lr: 0.1}\\noptimizer: {<<: *b, name: sgd}")["optimizer"]
    {'lr': 0.1, 'name': 'sgd'}
    >>> read_yaml_text("seed: !!bool maybe")
    Traceback (most recent call last):
    ...
    composer_swa.config.yaml_reader.YamlRefused: seed: cannot read 'maybe' as !!bool (line 1, column 7)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["MAX_DEPTH", "MAX_NODES", "YamlRefused", "read_yaml_text"]

#: Nesting levels a config may have, counted through aliases; real configs use fewer than 10.
MAX_DEPTH = 64
#: Values in the document once every alias is expanded; real configs have a few hundred.
MAX_NODES = 100_000
#: Digits of an integer literal; no config value needs more (a seed has at most 20).
_MAX_DIGITS = 100
_MERGE = "tag:yaml.org,2002:merge"
_KEY = object()  # a path part: inside a mapping key (counts as a level, not printed)


class YamlRefused(ValueError):
    """A YAML text the config reader refuses; the message starts with the YAML path."""


def _render(path: Sequence[object]) -> str:
    text = ""
    shown = [part for part in path if isinstance(part, (int, str))]
    if len(shown) > 12:  # a path 64 levels deep says no more than its start
        shown = [*shown[:10], "..."]
    for part in shown:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str):
            text += f".{part}" if text else part
    return text or "(top level)"


def _short(value: str) -> str:
    return repr(value) if len(value) <= 40 else f"{value[:20]!r}... ({len(value):,} characters)"


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, SequenceNode):
        yield from node.value
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value


class _Loader(yaml.SafeLoader):
    """The safe loader, plus: unique keys, YAML paths for every node, and bounds on depth and size."""

    def __init__(self, text: str, prefix: Sequence[str | int]) -> None:
        super().__init__(text)
        self._path: list[object] = list(prefix)
        self._depth = 0
        self._paths: dict[int, tuple[object, ...]] = {}

    def refuse(self, node: Node, problem: str) -> YamlRefused:
        mark = node.start_mark
        path = _render(self._paths.get(id(node), ()))
        return YamlRefused(f"{path}: {problem} (line {mark.line + 1}, column {mark.column + 1})")

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if parent is None:
            part: object = None
        elif isinstance(parent, MappingNode):
            part = index.value if isinstance(index, ScalarNode) else _KEY if index is None else "?"
        else:
            part = index
        self._path.append(part)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlRefused(
                    f"{_render(self._path)}: the YAML nests deeper than {MAX_DEPTH} levels "
                    f"(line {mark.line + 1}, column {mark.column + 1})"
                )
            alias = self.check_event(yaml.AliasEvent)  # an alias's node has its own path, where its anchor is
            node = super().compose_node(parent, index)
            if node is None:  # PyYAML composes a node for every event it accepts here
                raise YamlRefused(f"{_render(self._path)}: no value")
            if not alias:
                self._paths[id(node)] = tuple(self._path)
        finally:
            self._path.pop()
            self._depth -= 1
        return node

    def check_expansion(self, root: Node) -> None:
        """Refuses a document that refers to itself, or expands past MAX_NODES values or MAX_DEPTH levels.

        Aliases share nodes, so sizes are summed once per node (memoized): linear in the text.
        """
        sizes: dict[int, tuple[int, int]] = {}  # id -> (values, depth) once expanded
        ancestors: set[int] = set()
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, finished = stack.pop()
            key = id(node)
            if finished:
                ancestors.discard(key)
                below = [sizes[id(child)] for child in _children(node)]
                size = 1 + sum(values for values, _ in below)
                depth = 1 + max((depth for _, depth in below), default=0)
                if size > MAX_NODES:
                    raise self.refuse(node, f"aliases expand this to more than {MAX_NODES:,} values; write it out instead")
                if depth > MAX_DEPTH:
                    raise self.refuse(node, f"aliases nest this deeper than {MAX_DEPTH} levels")
                sizes[key] = (size, depth)
            elif key in ancestors:
                raise self.refuse(node, "this value contains an alias to itself (a circular reference)")
            elif key not in sizes:
                ancestors.add(key)
                stack.append((node, True))
                stack.extend((child, False) for child in _children(node))

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        if node.tag == "tag:yaml.org,2002:int" and isinstance(node.value, str) and len(node.value) > _MAX_DIGITS:
            raise self.refuse(node, f"an integer of {len(node.value):,} digits is beyond any value a config takes")
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, YamlRefused):
            raise
        except (ValueError, TypeError, KeyError, OverflowError) as error:  # PyYAML's own constructors
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            value = _short(node.value) if isinstance(node.value, str) else f"this {type(node).__name__}"
            detail = f": {error}" if not isinstance(error, KeyError) else ""
            raise self.refuse(node, f"cannot read {value} as {tag}{detail}") from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:  # `<<: *base`: merged keys may be overridden, that is the point
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise self.refuse(key_node, f"a mapping key must be a plain value, got a {type(key).__name__}")
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_timestamp_as_text(self, node: ScalarNode) -> str:
        return str(self.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_timestamp_as_text)


def read_yaml_text(text: str, prefix: Sequence[str | int] = ()) -> Any:
    """The value of one YAML document, within the bounds above; ``prefix`` is the YAML path of the text.

    Raises:
        YamlRefused: Naming the YAML path (after ``prefix``) and the line.
        yaml.YAMLError: On a syntax error (with its line).
    """
    loader = _Loader(text, prefix)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        loader.check_expansion(root)
        return loader.construct_document(root)
    except RecursionError:  # a last line of defence; the bounds above keep recursion shallow
        raise YamlRefused(f"{_render(prefix)}: the YAML nests too deeply") from None
    finally:
        loader.dispose()
