"""The job spec (``spec_version: 1``): stdlib dataclasses and strict validation.

``parse_spec(obj)`` checks the decoded JSON object against the contract in
``docs/agent-protocol.md`` and either returns a ``JobSpec`` or raises one
``SpecError`` listing every problem, each prefixed with its field path.
Checks against the board (model file, checksum, CPUs) happen in the runner.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from device_agent.errors import SpecError

SPEC_VERSION = 1
DEFAULT_INPUT_SEED = 0
DEFAULT_PROGRESS_INTERVAL_S = 0.5
COMPONENT_KINDS = ("cpu",)
DEFAULT_SYSFS_ROOT = "/sys"
POWER_KINDS = ("ina231", "hwmon")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_RAIL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ModelSpec:
    path: str
    sha256: Optional[str]


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    kind: str
    cpus: Tuple[int, ...]
    threads: int


@dataclass(frozen=True)
class Rules:
    warmup_runs: int
    min_count: int
    min_duration_s: float
    max_duration_s: float


@dataclass(frozen=True)
class PowerSpec:
    """On-board power sensors; ``rails`` maps rail name -> sensor folder relative to ``sysfs_root``."""

    kind: str
    rails: Tuple[Tuple[str, str], ...]
    update_period_us: Optional[int]


@dataclass(frozen=True)
class JobSpec:
    spec_version: int
    job_id: str
    model: ModelSpec
    component: ComponentSpec
    rules: Rules
    input_seed: int
    output_dir: str
    progress_interval_s: float
    sysfs_root: str = DEFAULT_SYSFS_ROOT
    power: Optional[PowerSpec] = None


_MISSING = object()


class _Checker:
    """Collects problems while reading fields of nested JSON objects."""

    def __init__(self) -> None:
        self.problems: List[str] = []

    def problem(self, field: str, text: str) -> None:
        self.problems.append("%s: %s" % (field, text))

    def obj(self, value: Any, field: str, required: Tuple[str, ...], optional: Tuple[str, ...]) -> Dict[str, Any]:
        """Check ``value`` is an object with exactly the allowed keys; return it (or {})."""
        if not isinstance(value, dict):
            self.problem(field or "spec", "must be a JSON object, got %s" % _type_name(value))
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
        if value is _MISSING:
            return minimum  # already reported as missing
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(field, "must be an integer, got %s" % _type_name(value))
            return minimum
        if value < minimum:
            self.problem(field, "must be >= %d, got %d" % (minimum, value))
        return value

    def number(self, value: Any, field: str, positive: bool = True) -> float:
        if value is _MISSING:
            return 1.0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(field, "must be a number, got %s" % _type_name(value))
            return 1.0
        if not math.isfinite(value):
            self.problem(field, "must be finite, got %r" % value)
            return 1.0
        if positive and value <= 0:
            self.problem(field, "must be > 0, got %r" % value)
        return float(value)

    def string(self, value: Any, field: str) -> str:
        if value is _MISSING:
            return ""
        if not isinstance(value, str):
            self.problem(field, "must be a string, got %s" % _type_name(value))
            return ""
        if not value:
            self.problem(field, "must not be empty")
        return value


def _type_name(value: Any) -> str:
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


def parse_spec(raw: Any) -> JobSpec:
    """Validate a decoded JSON job spec; raise ``SpecError`` naming every bad field."""
    c = _Checker()
    top = c.obj(
        raw, "",
        required=("spec_version", "job_id", "model", "component", "rules", "output_dir"),
        optional=("input_seed", "progress_interval_s", "sysfs_root", "power"),
    )
    get = top.get

    version = get("spec_version", _MISSING)
    if version is not _MISSING and (isinstance(version, bool) or version != SPEC_VERSION):
        c.problem("spec_version", "must be %d, got %r" % (SPEC_VERSION, version))

    job_id = c.string(get("job_id", _MISSING), "job_id")
    model = _parse_model(c, get("model", _MISSING))
    component = _parse_component(c, get("component", _MISSING))
    rules = _parse_rules(c, get("rules", _MISSING))
    input_seed = c.integer(get("input_seed", DEFAULT_INPUT_SEED), "input_seed", 0)
    output_dir = c.string(get("output_dir", _MISSING), "output_dir")
    progress_interval_s = c.number(get("progress_interval_s", DEFAULT_PROGRESS_INTERVAL_S), "progress_interval_s")
    sysfs_root = c.string(get("sysfs_root", DEFAULT_SYSFS_ROOT), "sysfs_root")
    if sysfs_root and not sysfs_root.startswith("/"):
        c.problem("sysfs_root", "must be an absolute path, got %r" % sysfs_root)
    power = _parse_power(c, get("power", None))

    if c.problems:
        raise SpecError("invalid job spec: " + "; ".join(c.problems))
    return JobSpec(
        spec_version=SPEC_VERSION, job_id=job_id, model=model, component=component,
        rules=rules, input_seed=input_seed, output_dir=output_dir,
        progress_interval_s=progress_interval_s, sysfs_root=sysfs_root, power=power,
    )


def _parse_model(c: _Checker, raw: Any) -> ModelSpec:
    if raw is _MISSING:
        return ModelSpec(path="", sha256=None)
    m = c.obj(raw, "model", required=("path",), optional=("sha256",))
    path = c.string(m.get("path", _MISSING), "model.path")
    sha256 = m.get("sha256")
    if sha256 is not None:
        if not isinstance(sha256, str) or not _SHA256_RE.match(sha256.lower()):
            c.problem("model.sha256", "must be 64 hex digits or null, got %s" % _type_name(sha256))
            sha256 = None
        else:
            sha256 = sha256.lower()
    return ModelSpec(path=path, sha256=sha256)


def _parse_component(c: _Checker, raw: Any) -> ComponentSpec:
    if raw is _MISSING:
        return ComponentSpec(name="", kind="cpu", cpus=(), threads=1)
    m = c.obj(raw, "component", required=("name", "kind", "cpus"), optional=("threads",))
    name = c.string(m.get("name", _MISSING), "component.name")
    kind = m.get("kind", _MISSING)
    if kind is not _MISSING and kind not in COMPONENT_KINDS:
        c.problem("component.kind", "must be one of %s, got %s" % (list(COMPONENT_KINDS), _type_name(kind)))
    cpus: List[int] = []
    raw_cpus = m.get("cpus", _MISSING)
    if raw_cpus is not _MISSING:
        if not isinstance(raw_cpus, list) or not raw_cpus:
            c.problem("component.cpus", "must be a non-empty array of CPU ids, got %s" % _type_name(raw_cpus))
        else:
            for i, cpu in enumerate(raw_cpus):
                cpus.append(c.integer(cpu, "component.cpus[%d]" % i, 0))
            if len(set(cpus)) != len(cpus):
                c.problem("component.cpus", "has duplicate CPU ids: %r" % raw_cpus)
    threads = c.integer(m.get("threads", max(len(cpus), 1)), "component.threads", 1)
    return ComponentSpec(name=name, kind=str(kind), cpus=tuple(cpus), threads=threads)


def _parse_rules(c: _Checker, raw: Any) -> Rules:
    if raw is _MISSING:
        return Rules(warmup_runs=0, min_count=1, min_duration_s=1.0, max_duration_s=1.0)
    m = c.obj(raw, "rules", required=("warmup_runs", "min_count", "min_duration_s", "max_duration_s"), optional=())
    warmup_runs = c.integer(m.get("warmup_runs", _MISSING), "rules.warmup_runs", 0)
    min_count = c.integer(m.get("min_count", _MISSING), "rules.min_count", 1)
    n_before = len(c.problems)
    min_duration_s = c.number(m.get("min_duration_s", _MISSING), "rules.min_duration_s")
    max_duration_s = c.number(m.get("max_duration_s", _MISSING), "rules.max_duration_s")
    both_given = "min_duration_s" in m and "max_duration_s" in m
    if both_given and len(c.problems) == n_before and max_duration_s < min_duration_s:
        c.problem(
            "rules.max_duration_s",
            "must be >= rules.min_duration_s (%r), got %r" % (min_duration_s, max_duration_s),
        )
    return Rules(
        warmup_runs=warmup_runs, min_count=min_count,
        min_duration_s=min_duration_s, max_duration_s=max_duration_s,
    )


def _parse_power(c: _Checker, raw: Any) -> Optional[PowerSpec]:
    if raw is None:
        return None
    m = c.obj(raw, "power", required=("kind", "rails"), optional=("update_period_us",))
    kind = m.get("kind", _MISSING)
    if kind is not _MISSING and kind not in POWER_KINDS:
        c.problem("power.kind", "must be one of %s, got %s" % (list(POWER_KINDS), _type_name(kind)))
    rails: List[Tuple[str, str]] = []
    raw_rails = m.get("rails", _MISSING)
    if raw_rails is not _MISSING:
        if not isinstance(raw_rails, dict) or not raw_rails:
            c.problem("power.rails", "must be a non-empty object of rail name -> sensor folder, got %s"
                      % _type_name(raw_rails))
        else:
            seen: Dict[str, str] = {}
            for rail, rel in raw_rails.items():
                field = "power.rails.%s" % rail
                if not _RAIL_RE.match(rail):
                    c.problem(field, "rail name must match %s" % _RAIL_RE.pattern)
                rel = _rel_path(c, rel, field)
                if rel in seen:
                    c.problem(field, "same sensor folder as power.rails.%s: %s" % (seen[rel], rel))
                elif rel:
                    seen[rel] = rail
                rails.append((rail, rel))
    update_period_us: Optional[int] = None
    raw_period = m.get("update_period_us")
    if raw_period is not None:
        update_period_us = c.integer(raw_period, "power.update_period_us", 1)
        if kind is not _MISSING and kind in POWER_KINDS and kind != "ina231":
            c.problem("power.update_period_us", "only for kind ina231, got kind %r" % kind)
    return PowerSpec(kind=str(kind), rails=tuple(rails), update_period_us=update_period_us)


def _rel_path(c: _Checker, value: Any, field: str) -> str:
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
