"""YAML documents that remember where each value came from.

``load_yaml(path)`` parses with the safe loader only and returns a
``SourceDoc``: the plain Python data plus a map from each value's path
(a tuple of keys and list indexes) to its line in the file. Validation errors
from pydantic carry such paths (``loc``), so every config error can name the
file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ConfigError

Loc = tuple[str | int, ...]


@dataclass
class SourceDoc:
    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    key_lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int:
        """Line (1-based) of the value at ``loc``, or of its nearest ancestor."""
        loc = tuple(loc)
        while loc:
            if loc in self.key_lines:
                return self.key_lines[loc]
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def where(self, loc: Loc) -> str:
        field_name = ".".join(str(p) for p in loc) or "(document)"
        return f"{self.path}:{self.line_of(loc)}: {field_name}"


def _construct(node: yaml.Node, loc: Loc, doc: SourceDoc, constructor: yaml.SafeLoader) -> Any:
    doc.lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ConfigError(
                    "invalid YAML",
                    [f"{doc.path}:{key_node.start_mark.line + 1}: mapping keys must be scalars"],
                )
            child = loc + (key,)
            if key in out:
                raise ConfigError(
                    "invalid YAML",
                    [f"{doc.path}:{key_node.start_mark.line + 1}: {'.'.join(map(str, child))}: duplicate key"],
                )
            doc.key_lines[child] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, child, doc, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loc + (i,), doc, constructor) for i, item in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)


def parse_yaml(text: str, path: Path) -> SourceDoc:
    doc = SourceDoc(path=path, data=None)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        doc.data = None if node is None else _construct(node, (), doc, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or str(exc)
        raise ConfigError("malformed YAML", [f"{path}:{line}: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError("malformed YAML", [f"{path}:1: {exc}"]) from None
    finally:
        loader.dispose()
    return doc


def load_yaml(path: Path) -> SourceDoc:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_yaml(text, path)


def validation_problems(doc: SourceDoc, exc: Any, prefix: Loc = ()) -> list[str]:
    """Turn a pydantic ``ValidationError`` into ``file:line: field: message`` lines."""
    problems = []
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(f"{doc.where(loc)}: {msg}")
    return problems
