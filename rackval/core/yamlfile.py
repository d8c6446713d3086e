"""Load a YAML file and validate it with pydantic, reporting errors as file:line: field: problem.

Validation engineers edit rack and spec files by hand; an error must point at the line to fix,
not at a pydantic traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from rackval.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

# A rack or spec file is a few hundred lines; these bounds refuse a wrong file (a log, a dump, a
# YAML bomb) with one line instead of memory growth or a RecursionError from deep in a library.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 200_000


def _check_shape(root: yaml.Node) -> str | None:
    """Walk the composed tree without recursion: too deep, too big, or a key given twice."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            return f"{node.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels"
        if count > MAX_NODES:
            return f"{node.start_mark.line + 1}: more than {MAX_NODES} values"
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen and key.tag != "tag:yaml.org,2002:merge":
                        return (
                            f"{key.start_mark.line + 1}: {key.value!r} is given twice "
                            f"(first on line {seen[key.value]}); the second would silently win"
                        )
                    seen[key.value] = key.start_mark.line + 1
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
    return None


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(key)), None)
            if match is None:
                # a missing key: point at the mapping that should hold it
                return line
            key_node = next(k for k, v in node.value if k.value == str(key))
            line = key_node.start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


class YamlLocator:
    """Turns a field path into ``file:line: field: problem`` for checks made after validation."""

    def __init__(self, path: Path, root: yaml.Node | None, what: str) -> None:
        self.path = path
        self.root = root
        self.what = what

    def line(self, loc: tuple[Any, ...], message: str) -> str:
        """``file:line: field: message`` for the YAML node at ``loc``."""
        field = ".".join(str(p) for p in loc)
        return f"{self.path}:{_line_of(self.root, loc) or 1}: {field}: {message}"

    def error(self, loc: tuple[Any, ...], message: str) -> ConfigError:
        return self.errors([(loc, message)])

    def errors(self, problems: list[tuple[tuple[Any, ...], str]]) -> ConfigError:
        """One error listing every problem, a line each."""
        return ConfigError(f"invalid {self.what} file:\n  " + "\n  ".join(self.line(*p) for p in problems))


def read_yaml(path: Path, what: str) -> tuple[Any, yaml.Node | None]:
    """Read ``path`` as one YAML document: the data and its node tree (for line numbers).

    Refuses, as one ``ConfigError`` naming file and line, what a hand-edited file must not be: too
    big, not UTF-8, not valid YAML, nested too deep, or a key given twice in one mapping.
    """
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}:1: {what} file is {size:,} bytes; a {what} file is at most {MAX_FILE_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} file {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} file {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            problem = _check_shape(root) if root is not None else None
            if problem:
                raise ConfigError(f"{path}:{problem}")
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: {what} file is not valid YAML: {problem}") from None
    except RecursionError:  # the composer recurses per level: thousands of levels never reach the check
        raise ConfigError(f"{path}:1: nested deeper than {MAX_DEPTH} levels") from None
    return data, root


def load_yaml_model(path: Path, model: type[M], what: str) -> tuple[M, YamlLocator]:
    """Parse ``path`` as YAML and validate it as ``model``; errors name file, line and field.

    Returns the model and a locator for the caller's own cross-field checks.
    """
    data, root = read_yaml(path, what)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: {what} file must be a YAML mapping, got {type(data).__name__}")
    try:
        return model.model_validate(data), YamlLocator(path, root, what)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            line = _line_of(root, loc)
            field = ".".join(str(p) for p in loc) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling)"
            elif err["type"] == "missing":
                msg = "missing required field"
            lines.append(f"{path}:{line or 1}: {field}: {msg}")
        raise ConfigError(f"invalid {what} file:\n  " + "\n  ".join(lines)) from None
