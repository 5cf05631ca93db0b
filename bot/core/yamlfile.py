"""Reading operator-edited YAML files while remembering the line of every value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

try:  # the C loader is several times faster; fall back where libyaml is absent
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader


class ContentError(Exception):
    """A problem in a content file, with the file and (when known) the 1-based line."""

    def __init__(self, path: Path, line: int | None, message: str):
        self.path = Path(path)
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{display_path(self.path, self.line)}: {self.message}"


def display_path(path: Path, line: int | None = None) -> str:
    """A path as an operator reads it: relative to the working folder when inside it, with :line."""
    path = Path(path)
    try:
        path = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return f"{path}:{line}" if line else str(path)


class ContentErrors(Exception):
    """One or more problems in content files, each naming file and line."""

    def __init__(self, errors: list[ContentError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def line_of(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of the value at loc, or of its nearest enclosing value."""
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def load_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Parse a YAML file; return its data and a map from value path to 1-based line.

    A path is a tuple of mapping keys and sequence indexes, e.g. ("intents", 3, "examples", 0).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ContentError(path, None, f"cannot read file: {exc.strerror}") from None
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContentError(path, line, f"YAML syntax error: {problem}") from None
    if node is None:
        return None, {}
    lines: dict[tuple, int] = {}
    data = _construct(node, (), lines)
    return data, lines


def _construct(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            out[key] = _construct(value_node, path + (key,), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, path + (i,), lines) for i, child in enumerate(node.value)]
    return _scalar(node)


_constructor = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.Node) -> Any:
    return _constructor.construct_object(node, deep=True)


def validate(model: type[BaseModel], data: Any, path: Path, lines: dict[tuple, int]) -> Any:
    """Validate parsed YAML against a pydantic model; raise ContentErrors naming the lines."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc)
            errors.append(ContentError(path, line_of(lines, loc), f"{where}: {err['msg']}"))
        raise ContentErrors(errors) from None
