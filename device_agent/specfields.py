"""Field checks shared by the job spec's parsers: one ``Checker`` collects every problem.

Each problem is prefixed with its field path (``rules.min_count: ...``); the
parsers keep going after a problem so that one ``SpecError`` lists them all.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

MISSING = object()


class Checker:
    """Collects problems while reading fields of nested JSON objects."""

    def __init__(self) -> None:
        self.problems: List[str] = []

    def problem(self, field: str, text: str) -> None:
        self.problems.append("%s: %s" % (field, text))

    def obj(self, value: Any, field: str, required: Tuple[str, ...], optional: Tuple[str, ...]) -> Dict[str, Any]:
        """Check ``value`` is an object with exactly the allowed keys; return it (or {})."""
        if not isinstance(value, dict):
            self.problem(field or "spec", "must be a JSON object, got %s" % type_name(value))
            return {}
        prefix = field + "." if field else ""
        for key in value:
            if key not in required and key not in optional:
                self.problem(prefix + str(key), "unknown key")
        for key in required:
            if key not in value:
                self.problem(prefix + key, "missing required field")
        return value

    def integer(self, value: Any, field: str, minimum: int) -> int:
        if value is MISSING:
            return minimum  # already reported as missing
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(field, "must be an integer, got %s" % type_name(value))
            return minimum
        if value < minimum:
            self.problem(field, "must be >= %d, got %d" % (minimum, value))
        return value

    def number(self, value: Any, field: str, positive: bool = True) -> float:
        if value is MISSING:
            return 1.0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(field, "must be a number, got %s" % type_name(value))
            return 1.0
        if not math.isfinite(value):
            self.problem(field, "must be finite, got %r" % value)
            return 1.0
        if positive and value <= 0:
            self.problem(field, "must be > 0, got %r" % value)
        return float(value)

    def string(self, value: Any, field: str) -> str:
        if value is MISSING:
            return ""
        if not isinstance(value, str):
            self.problem(field, "must be a string, got %s" % type_name(value))
            return ""
        if not value:
            self.problem(field, "must not be empty")
        return value


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean %s" % ("true" if value else "false")
    if isinstance(value, str):
        return "string %r" % value
    if isinstance(value, (int, float)):
        return "number %r" % value
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__



def rel_path(c: Checker, value: Any, field: str) -> str:
    """A folder below ``sysfs_root``: relative, no ``..``; normalised without ``.``/empty parts."""
    text = c.string(value, field)
    if not text:
        return ""
    if text.startswith("/"):
        c.problem(field, "must be relative to sysfs_root, got %r" % text)
        return ""
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        c.problem(field, "must be a folder below sysfs_root (no '..'), got %r" % text)
        return ""
    return "/".join(parts)


def int_list(c: Checker, value: Any, field: str, minimum: int = 0, unique: bool = True) -> List[int]:
    """A non-empty array of integers >= ``minimum`` (distinct unless ``unique`` is False)."""
    if value is MISSING:
        return []
    if not isinstance(value, list) or not value:
        c.problem(field, "must be a non-empty array of integers, got %s" % type_name(value))
        return []
    out = [c.integer(v, "%s[%d]" % (field, i), minimum) for i, v in enumerate(value)]
    if unique and len(set(out)) != len(out):
        c.problem(field, "has duplicate values: %r" % value)
    return out
