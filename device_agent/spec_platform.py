"""The ``platform`` part of the job spec: frequencies to hold or watch, and thermal zones to watch.

```
"platform": {"cpufreq": {"policy4": {"governor": "performance"}, "policy0": {"watch": true}},
             "devfreq": {"11800000.gpu": {"pin_khz": 600000}},
             "thermal_zones": ["thermal_zone0"]}
```
Each frequency domain gets exactly one of ``governor`` (only ``performance``:
the top available frequency), ``pin_khz`` (min = max = that frequency; it
must be one the domain offers, checked against the board by the runner) or
``watch: true`` (nothing is written: the domain is only sampled, and a cap
seen during the window makes the job INVALID; see ``platform/watch.py``).
A watched cpufreq policy may add ``loaded: true``: the job keeps it busy (a
``cpu`` component runs on it), so its governor is expected at its limit.
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
    """One frequency domain: ``governor`` performance, ``pin_khz``, or ``watch`` (sampled, not held)."""

    name: str  # "policy4" or a devfreq node name
    governor: Optional[str]
    pin_khz: Optional[int]
    watch: bool = False
    loaded: bool = False  # watch only: the job keeps the domain busy


@dataclass(frozen=True)
class PlatformSpec:
    cpufreq: Tuple[FreqRequest, ...]
    devfreq: Tuple[FreqRequest, ...]
    thermal_zones: Tuple[str, ...]

    def held(self, group: str) -> Tuple[FreqRequest, ...]:
        """The domains of ``group`` ("cpufreq" or "devfreq") whose frequency is set and held."""
        return tuple(r for r in getattr(self, group) if not r.watch)

    def watched(self, group: str) -> Tuple[FreqRequest, ...]:
        """The domains of ``group`` that are only sampled."""
        return tuple(r for r in getattr(self, group) if r.watch)


def parse_platform(c: Checker, raw: Any) -> Optional[PlatformSpec]:
    if raw is None:
        return None
    m = c.obj(raw, "platform", required=(), optional=("cpufreq", "devfreq", "thermal_zones"))
    cpufreq = _domains(c, m.get("cpufreq", {}), "platform.cpufreq", _POLICY_RE, "policyN", loads=True)
    devfreq = _domains(c, m.get("devfreq", {}), "platform.devfreq", _NODE_RE, "a devfreq node name", loads=False)
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


def _domains(c: Checker, raw: Any, field: str, name_re: Any, what: str, loads: bool) -> Tuple[FreqRequest, ...]:
    if not isinstance(raw, dict):
        c.problem(field, "must be an object of name -> setting, got %s" % type_name(raw))
        return ()
    out = []
    for name, setting in raw.items():
        sub = "%s.%s" % (field, name)
        if not name_re.match(name):
            c.problem(sub, "must be %s" % what)
        keys = ("governor", "pin_khz", "watch") + (("loaded",) if loads else ())
        s = c.obj(setting, sub, required=(), optional=keys)
        governor = s.get("governor", MISSING)
        pin = s.get("pin_khz", MISSING)
        watch = s.get("watch", MISSING)
        loaded = s.get("loaded", MISSING)
        if loaded is not MISSING:
            if watch is MISSING:
                c.problem(sub + ".loaded", "only with watch: true (a held domain is checked against its setting)")
            elif not isinstance(loaded, bool):
                c.problem(sub + ".loaded", "must be true or false, got %s" % type_name(loaded))
        if [governor, pin, watch].count(MISSING) != 2:
            if isinstance(setting, dict):
                c.problem(sub, "needs exactly one of governor or pin_khz (or watch: true alone, to sample it "
                               "without holding it)")
            out.append(FreqRequest(name, None, None))
            continue
        if watch is not MISSING:
            if watch is not True:
                c.problem(sub + ".watch", "must be true (leave the domain out to not watch it), got %s"
                          % type_name(watch))
            out.append(FreqRequest(name, None, None, watch=True, loaded=loaded is True))
        elif governor is not MISSING:
            if governor not in GOVERNORS:
                c.problem(sub + ".governor", "must be one of %s, got %s" % (list(GOVERNORS), type_name(governor)))
            out.append(FreqRequest(name, str(governor), None))
        else:
            out.append(FreqRequest(name, None, c.integer(pin, sub + ".pin_khz", 1)))
    return tuple(out)
