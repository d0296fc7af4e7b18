"""The ``platform`` part of the job spec: frequencies to hold and thermal zones to watch.

```
"platform": {"cpufreq": {"policy4": {"governor": "performance"}},
             "devfreq": {"11800000.gpu": {"pin_khz": 600000}},
             "thermal_zones": ["thermal_zone0"]}
```
Each frequency domain gets exactly one of ``governor`` (only ``performance``:
the top available frequency) or ``pin_khz`` (min = max = that frequency; it
must be one the domain offers, checked against the board by the runner).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from device_agent.specfields import MISSING, Checker, type_name

GOVERNORS = ("performance",)
_POLICY_RE = re.compile(r"^policy[0-9]+$")
_NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_ZONE_RE = re.compile(r"^thermal_zone[0-9]+$")


@dataclass(frozen=True)
class FreqRequest:
    """One frequency domain: ``governor`` performance, or ``pin_khz``."""

    name: str  # "policy4" or a devfreq node name
    governor: Optional[str]
    pin_khz: Optional[int]


@dataclass(frozen=True)
class PlatformSpec:
    cpufreq: Tuple[FreqRequest, ...]
    devfreq: Tuple[FreqRequest, ...]
    thermal_zones: Tuple[str, ...]


def parse_platform(c: Checker, raw: Any) -> Optional[PlatformSpec]:
    if raw is None:
        return None
    m = c.obj(raw, "platform", required=(), optional=("cpufreq", "devfreq", "thermal_zones"))
    cpufreq = _domains(c, m.get("cpufreq", {}), "platform.cpufreq", _POLICY_RE, "policyN")
    devfreq = _domains(c, m.get("devfreq", {}), "platform.devfreq", _NODE_RE, "a devfreq node name")
    zones: List[str] = []
    raw_zones = m.get("thermal_zones", [])
    if not isinstance(raw_zones, list):
        c.problem("platform.thermal_zones", "must be an array of thermal_zoneN names, got %s" % type_name(raw_zones))
    else:
        for i, zone in enumerate(raw_zones):
            field = "platform.thermal_zones[%d]" % i
            if not isinstance(zone, str) or not _ZONE_RE.match(zone):
                c.problem(field, "must be a name like thermal_zone0, got %s" % type_name(zone))
            elif zone in zones:
                c.problem(field, "duplicate thermal zone %r" % zone)
            else:
                zones.append(zone)
    if m and not (cpufreq or devfreq or zones):
        c.problem("platform", "names no cpufreq policy, devfreq node or thermal zone")
    return PlatformSpec(cpufreq=cpufreq, devfreq=devfreq, thermal_zones=tuple(zones))


def _domains(c: Checker, raw: Any, field: str, name_re: Any, what: str) -> Tuple[FreqRequest, ...]:
    if not isinstance(raw, dict):
        c.problem(field, "must be an object of name -> setting, got %s" % type_name(raw))
        return ()
    out = []
    for name, setting in raw.items():
        sub = "%s.%s" % (field, name)
        if not name_re.match(name):
            c.problem(sub, "must be %s" % what)
        s = c.obj(setting, sub, required=(), optional=("governor", "pin_khz"))
        governor = s.get("governor", MISSING)
        pin = s.get("pin_khz", MISSING)
        if (governor is MISSING) == (pin is MISSING):
            if isinstance(setting, dict):
                c.problem(sub, "needs exactly one of governor or pin_khz")
            out.append(FreqRequest(name, None, None))
            continue
        if governor is not MISSING:
            if governor not in GOVERNORS:
                c.problem(sub + ".governor", "must be one of %s, got %s" % (list(GOVERNORS), type_name(governor)))
            out.append(FreqRequest(name, str(governor), None))
        else:
            out.append(FreqRequest(name, None, c.integer(pin, sub + ".pin_khz", 1)))
    return tuple(out)
