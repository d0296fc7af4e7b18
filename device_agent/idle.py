"""``python3 -m device_agent idle SPEC``: the board's idle power from its own sensors.

The power sensors of a job spec are sampled for ``duration_s`` while the agent
sleeps and nothing else of socfarm runs on the board; the summary's ``power``
block is the one of a job (``power.csv`` with its checksum, per-rail mean
power and energy), so the controller subtracts it per rail from the jobs of
the same run. The spec::

    {"spec_version": 1, "job_id": "idle-xu3-01", "duration_s": 3.0,
     "output_dir": "/var/lib/socfarm/jobs/RUN/idle", "sysfs_root": "/sys",
     "power": {"kind": "ina231", "rails": {"a15": "bus/i2c/drivers/INA231/3-0040"}}}
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

from device_agent import AGENT_VERSION
from device_agent.errors import SpecError
from device_agent.events import EventWriter
from device_agent.outputs import make_output_dir, power_fields, wall_offset, window_fields
from device_agent.power.session import PowerSession
from device_agent.spec import DEFAULT_SYSFS_ROOT, PowerSpec, check_spec_version, parse_power, parse_sysfs_root
from device_agent.specfields import MISSING, Checker

MAX_IDLE_S = 600.0


@dataclass(frozen=True)
class IdleSpec:
    job_id: str
    duration_s: float
    output_dir: str
    sysfs_root: str
    power: PowerSpec


def parse_idle_spec(raw: Any) -> IdleSpec:
    c = Checker()
    top = c.obj(raw, "", required=("spec_version", "job_id", "duration_s", "output_dir", "power"),
                optional=("sysfs_root",))
    check_spec_version(c, top.get("spec_version", MISSING))
    job_id = c.string(top.get("job_id", MISSING), "job_id")
    duration_s = c.number(top.get("duration_s", MISSING), "duration_s")
    if isinstance(duration_s, float) and not 0 < duration_s <= MAX_IDLE_S:
        c.problem("duration_s", "must be > 0 and <= %g, got %r" % (MAX_IDLE_S, duration_s))
    output_dir = c.string(top.get("output_dir", MISSING), "output_dir")
    sysfs_root = parse_sysfs_root(c, top.get("sysfs_root", DEFAULT_SYSFS_ROOT))
    power = None
    if top.get("power") is None and "power" in top:
        c.problem("power", "must be an object (the sensors to sample), got null")
    elif "power" in top:
        power = parse_power(c, top["power"])
    if c.problems or power is None:
        raise SpecError("invalid idle spec: " + "; ".join(c.problems))
    return IdleSpec(job_id=job_id, duration_s=float(duration_s), output_dir=output_dir, sysfs_root=sysfs_root,
                    power=power)


def run_idle(spec: IdleSpec, events: EventWriter, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
    """Emits ``started`` and ``summary`` (``duration_s``, ``window``, ``power``); sensors restored on any exit."""
    events.job_id = spec.job_id
    make_output_dir(spec.output_dir)
    power = PowerSession.open(spec.power, spec.sysfs_root, spec.duration_s + 60.0, clock_ns)
    with power.active():
        events.emit("started", agent_version=AGENT_VERSION, hostname=socket.gethostname(), pid=os.getpid(),
                    duration_s=spec.duration_s)
        offset = wall_offset(clock_ns)
        power.window_open()
        start = clock_ns()
        end_at = start + int(spec.duration_s * 1e9)
        while True:
            left = end_at - clock_ns()
            if left <= 0:
                break
            time.sleep(min(left / 1e9, 0.5))  # short naps: SIGTERM is handled between them
        end = clock_ns()
        power.window_close()
        samples = power.finish()
        fields = {"duration_s": (end - start) / 1e9, "window": window_fields(start, end, offset),
                  "power": power_fields(spec.output_dir, power.spec.kind, power.rails, samples, start, end)}
    events.emit("summary", **fields)
