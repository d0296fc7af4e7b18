"""The ``component`` / ``components`` part of the job spec.

A component is one inference engine of the board: ``cpu`` (a TFLite
interpreter on a CPU cluster), ``gpu`` (the same interpreter with a delegate
library), ``external`` (a command run per batch of frames, e.g. over adb) or
``simulated`` (a modelled latency: each call sleeps for a seeded draw, see
``backends/simulated.py``; its figures are not measurements).
Every kind names the ``cpus`` its driving thread/process is pinned to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from device_agent.specfields import MISSING, Checker, int_list, type_name

COMPONENT_KINDS = ("cpu", "gpu", "external", "simulated")
NO_RUNTIME_KINDS = ("external", "simulated")  # kinds that never import the TFLite runtime
DEFAULT_EXTERNAL_TIMEOUT_S = 60.0
DEFAULT_SIMULATED_SIGMA = 0.05
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMMON = ("name", "kind", "cpus")
_OPTIONAL = {
    "cpu": ("threads",),
    "gpu": ("threads", "delegate_path", "delegate_options"),
    "external": ("command", "frames_per_batch", "timeout_s"),
    "simulated": ("ms_per_inference", "ms_per_mib", "sigma"),
}


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    kind: str
    cpus: Tuple[int, ...]
    threads: int
    delegate_path: Optional[str] = None
    delegate_options: Tuple[Tuple[str, str], ...] = ()
    command: Tuple[str, ...] = ()
    frames_per_batch: int = 1
    timeout_s: float = DEFAULT_EXTERNAL_TIMEOUT_S
    ms_per_inference: float = 0.0
    ms_per_mib: float = 0.0
    sigma: float = DEFAULT_SIMULATED_SIGMA

    @property
    def frames_per_call(self) -> int:
        """Frames one call of the component processes (a batch for ``external``, else 1)."""
        return self.frames_per_batch if self.kind == "external" else 1


def parse_component(c: Checker, raw: Any, field: str) -> ComponentSpec:
    if raw is MISSING:
        return ComponentSpec(name="", kind="cpu", cpus=(), threads=1)
    kind = raw.get("kind", MISSING) if isinstance(raw, dict) else MISSING
    known = kind in COMPONENT_KINDS
    optional = _OPTIONAL[kind] if known else tuple(sorted({k for v in _OPTIONAL.values() for k in v}))
    m = c.obj(raw, field, required=_COMMON, optional=optional)
    name = c.string(m.get("name", MISSING), field + ".name")
    if kind is not MISSING and not known:
        c.problem(field + ".kind", "must be one of %s, got %s" % (list(COMPONENT_KINDS), type_name(kind)))
    cpus = int_list(c, m.get("cpus", MISSING), field + ".cpus")
    threads = c.integer(m.get("threads", max(len(cpus), 1)), field + ".threads", 1)
    spec = ComponentSpec(name=name, kind=str(kind), cpus=tuple(cpus), threads=threads)
    if kind == "gpu":
        return _gpu(c, m, field, spec)
    if kind == "external":
        return _external(c, m, field, spec)
    if kind == "simulated":
        return _simulated(c, m, field, spec)
    return spec


def _gpu(c: Checker, m: Dict[str, Any], field: str, spec: ComponentSpec) -> ComponentSpec:
    if "delegate_path" not in m:
        c.problem(field + ".delegate_path", "missing required field (kind gpu)")
    path = c.string(m.get("delegate_path", MISSING), field + ".delegate_path")
    options: List[Tuple[str, str]] = []
    raw = m.get("delegate_options", {})
    if not isinstance(raw, dict):
        c.problem(field + ".delegate_options", "must be an object of option -> value, got %s" % type_name(raw))
    else:
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                c.problem("%s.delegate_options.%s" % (field, key),
                          "must be a string or number, got %s" % type_name(value))
                continue
            options.append((key, str(value)))
    return ComponentSpec(spec.name, spec.kind, spec.cpus, spec.threads,
                         delegate_path=path, delegate_options=tuple(options))


def _external(c: Checker, m: Dict[str, Any], field: str, spec: ComponentSpec) -> ComponentSpec:
    if "command" not in m:
        c.problem(field + ".command", "missing required field (kind external)")
    raw = m.get("command", MISSING)
    command: List[str] = []
    if raw is not MISSING:
        if not isinstance(raw, list) or not raw or not all(isinstance(a, str) and a for a in raw):
            c.problem(field + ".command", "must be a non-empty array of non-empty strings (argv), got %s"
                      % type_name(raw))
        else:
            command = list(raw)
    frames = c.integer(m.get("frames_per_batch", 1), field + ".frames_per_batch", 1)
    timeout_s = c.number(m.get("timeout_s", DEFAULT_EXTERNAL_TIMEOUT_S), field + ".timeout_s")
    return ComponentSpec(spec.name, spec.kind, spec.cpus, 1, command=tuple(command),
                         frames_per_batch=frames, timeout_s=timeout_s)


def _at_least_zero(c: Checker, m: Dict[str, Any], key: str, field: str, default: float) -> float:
    value = c.number(m.get(key, default), "%s.%s" % (field, key), positive=False)
    if value < 0:
        c.problem("%s.%s" % (field, key), "must be >= 0, got %r" % value)
    return value


def _simulated(c: Checker, m: Dict[str, Any], field: str, spec: ComponentSpec) -> ComponentSpec:
    if "ms_per_inference" not in m:
        c.problem(field + ".ms_per_inference", "missing required field (kind simulated)")
    ms = c.number(m.get("ms_per_inference", MISSING), field + ".ms_per_inference")
    per_mib = _at_least_zero(c, m, "ms_per_mib", field, 0.0)
    sigma = _at_least_zero(c, m, "sigma", field, DEFAULT_SIMULATED_SIGMA)
    return ComponentSpec(spec.name, spec.kind, spec.cpus, 1, ms_per_inference=ms, ms_per_mib=per_mib, sigma=sigma)


def parse_components(c: Checker, raw: Any) -> Tuple[ComponentSpec, ...]:
    """``components``: a non-empty array; names unique, CPU sets disjoint."""
    if not isinstance(raw, list) or not raw:
        c.problem("components", "must be a non-empty array of components, got %s" % type_name(raw))
        return ()
    out = tuple(parse_component(c, item, "components[%d]" % i) for i, item in enumerate(raw))
    names: Dict[str, int] = {}
    owner: Dict[int, str] = {}
    for i, comp in enumerate(out):
        if comp.name and not _NAME_RE.match(comp.name):
            c.problem("components[%d].name" % i, "must match %s" % _NAME_RE.pattern)
        if comp.name in names:
            c.problem("components[%d].name" % i, "same name as components[%d]: %r" % (names[comp.name], comp.name))
        names.setdefault(comp.name, i)
        for cpu in comp.cpus:
            if cpu in owner and owner[cpu] != comp.name:
                c.problem("components[%d].cpus" % i, "CPU %d is also used by component %r" % (cpu, owner[cpu]))
            owner.setdefault(cpu, comp.name)
    return out


def parse_isolated_ips(c: Checker, raw: Any, names: Tuple[str, ...]) -> Tuple[Tuple[str, float], ...]:
    """``isolated_ips``: component name -> its isolated throughput (> 0)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        c.problem("isolated_ips", "must be a non-empty object of component -> images/s, got %s" % type_name(raw))
        return ()
    out = []
    for name, value in raw.items():
        field = "isolated_ips.%s" % name
        if name not in names:
            c.problem(field, "no such component (components: %s)" % ", ".join(names))
        out.append((name, c.number(value, field)))
    missing = [n for n in names if n not in raw]
    if missing:
        c.problem("isolated_ips", "missing component(s) %s" % ", ".join(missing))
    return tuple(out)
