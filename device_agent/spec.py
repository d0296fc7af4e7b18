"""The job spec (``spec_version: 1``): stdlib dataclasses and strict validation.

``parse_spec(obj)`` checks the decoded JSON object against the contract in
``docs/agent-protocol.md`` and either returns a ``JobSpec`` or raises one
``SpecError`` listing every problem, each prefixed with its field path.
Checks against the board (model file, checksum, CPUs) happen in the runner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from device_agent.errors import SpecError
from device_agent.spec_components import (
    ComponentSpec,
    parse_component,
    parse_components,
    parse_isolated_ips,
)
from device_agent.spec_platform import PlatformSpec, parse_platform
from device_agent.specfields import MISSING, Checker, int_list, rel_path, type_name

SPEC_VERSION = 1
DEFAULT_INPUT_SEED = 0
DEFAULT_PROGRESS_INTERVAL_S = 0.5
DEFAULT_SYSFS_ROOT = "/sys"
POWER_KINDS = ("ina231", "hwmon")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_RAIL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ModelSpec:
    path: str
    sha256: Optional[str]
    input_shape: Optional[Tuple[int, ...]] = None  # expected; checked against the model when given


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
    # With ``components`` (co-execution): all of them; with ``component``: that one alone.
    components: Tuple[ComponentSpec, ...] = ()
    coexec: bool = False
    isolated_ips: Tuple[Tuple[str, float], ...] = ()
    platform: Optional[PlatformSpec] = None


def parse_spec(raw: Any) -> JobSpec:
    """Validate a decoded JSON job spec; raise ``SpecError`` naming every bad field."""
    c = Checker()
    top = c.obj(
        raw, "",
        required=("spec_version", "job_id", "model", "rules", "output_dir"),
        optional=("component", "components", "isolated_ips", "input_seed", "progress_interval_s",
                  "sysfs_root", "power", "platform"),
    )
    get = top.get

    check_spec_version(c, get("spec_version", MISSING))

    job_id = c.string(get("job_id", MISSING), "job_id")
    model = _parse_model(c, get("model", MISSING))
    coexec = "components" in top
    if coexec == ("component" in top):
        if isinstance(raw, dict):
            c.problem("component", "exactly one of component (one component alone) or components "
                      "(co-execution) is required")
        components: Tuple[ComponentSpec, ...] = (parse_component(c, MISSING, "component"),)
    elif coexec:
        components = parse_components(c, get("components"))
    else:
        components = (parse_component(c, get("component"), "component"),)
    if not components:
        components = (parse_component(c, MISSING, "component"),)
    isolated_ips = parse_isolated_ips(c, get("isolated_ips", None), tuple(x.name for x in components))
    if isolated_ips and not coexec:
        c.problem("isolated_ips", "only with components (co-execution)")
    platform = parse_platform(c, get("platform", None))
    rules = _parse_rules(c, get("rules", MISSING))
    input_seed = c.integer(get("input_seed", DEFAULT_INPUT_SEED), "input_seed", 0)
    output_dir = c.string(get("output_dir", MISSING), "output_dir")
    progress_interval_s = c.number(get("progress_interval_s", DEFAULT_PROGRESS_INTERVAL_S), "progress_interval_s")
    sysfs_root = parse_sysfs_root(c, get("sysfs_root", DEFAULT_SYSFS_ROOT))
    power = parse_power(c, get("power", None))

    if c.problems:
        raise SpecError("invalid job spec: " + "; ".join(c.problems))
    return JobSpec(
        spec_version=SPEC_VERSION, job_id=job_id, model=model, component=components[0],
        rules=rules, input_seed=input_seed, output_dir=output_dir,
        progress_interval_s=progress_interval_s, sysfs_root=sysfs_root, power=power,
        components=components, coexec=coexec, isolated_ips=isolated_ips, platform=platform,
    )


def check_spec_version(c: Checker, version: Any) -> None:
    """``spec_version``: exactly SPEC_VERSION (a missing one is reported as a missing field)."""
    if version is not MISSING and (isinstance(version, bool) or version != SPEC_VERSION):
        c.problem("spec_version", "must be %d, got %r" % (SPEC_VERSION, version))


def parse_sysfs_root(c: Checker, raw: Any) -> str:
    """``sysfs_root``: an absolute path."""
    sysfs_root = c.string(raw, "sysfs_root")
    if sysfs_root and not sysfs_root.startswith("/"):
        c.problem("sysfs_root", "must be an absolute path, got %r" % sysfs_root)
    return sysfs_root


def _parse_model(c: Checker, raw: Any) -> ModelSpec:
    if raw is MISSING:
        return ModelSpec(path="", sha256=None)
    m = c.obj(raw, "model", required=("path",), optional=("sha256", "input_shape"))
    path = c.string(m.get("path", MISSING), "model.path")
    sha256 = m.get("sha256")
    if sha256 is not None:
        if not isinstance(sha256, str) or not _SHA256_RE.match(sha256.lower()):
            c.problem("model.sha256", "must be 64 hex digits or null, got %s" % type_name(sha256))
            sha256 = None
        else:
            sha256 = sha256.lower()
    input_shape = None
    if m.get("input_shape") is not None:
        input_shape = tuple(int_list(c, m["input_shape"], "model.input_shape", 1, unique=False))
    return ModelSpec(path=path, sha256=sha256, input_shape=input_shape)


def _parse_rules(c: Checker, raw: Any) -> Rules:
    if raw is MISSING:
        return Rules(warmup_runs=0, min_count=1, min_duration_s=1.0, max_duration_s=1.0)
    m = c.obj(raw, "rules", required=("warmup_runs", "min_count", "min_duration_s", "max_duration_s"), optional=())
    warmup_runs = c.integer(m.get("warmup_runs", MISSING), "rules.warmup_runs", 0)
    min_count = c.integer(m.get("min_count", MISSING), "rules.min_count", 1)
    n_before = len(c.problems)
    min_duration_s = c.number(m.get("min_duration_s", MISSING), "rules.min_duration_s")
    max_duration_s = c.number(m.get("max_duration_s", MISSING), "rules.max_duration_s")
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


def parse_power(c: Checker, raw: Any) -> Optional[PowerSpec]:
    if raw is None:
        return None
    m = c.obj(raw, "power", required=("kind", "rails"), optional=("update_period_us",))
    kind = m.get("kind", MISSING)
    if kind is not MISSING and kind not in POWER_KINDS:
        c.problem("power.kind", "must be one of %s, got %s" % (list(POWER_KINDS), type_name(kind)))
    rails: List[Tuple[str, str]] = []
    raw_rails = m.get("rails", MISSING)
    if raw_rails is not MISSING:
        if not isinstance(raw_rails, dict) or not raw_rails:
            c.problem("power.rails", "must be a non-empty object of rail name -> sensor folder, got %s"
                      % type_name(raw_rails))
        else:
            seen: Dict[str, str] = {}
            for rail, rel in raw_rails.items():
                field = "power.rails.%s" % rail
                if not _RAIL_RE.match(rail):
                    c.problem(field, "rail name must match %s" % _RAIL_RE.pattern)
                rel = rel_path(c, rel, field)
                if rel in seen:
                    c.problem(field, "same sensor folder as power.rails.%s: %s" % (seen[rel], rel))
                elif rel:
                    seen[rel] = rail
                rails.append((rail, rel))
    update_period_us: Optional[int] = None
    raw_period = m.get("update_period_us")
    if raw_period is not None:
        update_period_us = c.integer(raw_period, "power.update_period_us", 1)
        if kind is not MISSING and kind in POWER_KINDS and kind != "ina231":
            c.problem("power.update_period_us", "only for kind ina231, got kind %r" % kind)
    return PowerSpec(kind=str(kind), rails=tuple(rails), update_period_us=update_period_us)
