"""A job's power rails from check to restore.

``PowerSession.open(spec)`` builds one sensor per rail and checks that every
folder exists and holds the sensor's files (``SpecError`` naming
``power.rails.<rail>``); ``start()`` prepares the sensors (enable, conversion
period), ``window_open()``/``window_close()`` start and stop the sampler
thread around the measurement window, ``finish()`` returns the samples (or
raises what went wrong in the thread) and ``close()`` restores every sensor.
``active()`` is the ``with`` form of start/close: it restores on every exit,
and a restore failure never hides the error that is already on its way.
"""

from __future__ import annotations

import time
from typing import Callable, List, Optional, Union

from device_agent.errors import SpecError, SysfsError
from device_agent.power import hwmon, ina231
from device_agent.power.base import Sample
from device_agent.power.hwmon import HwmonSensor
from device_agent.power.ina231 import Ina231Sensor
from device_agent.power.sampler import Sampler
from device_agent.restoring import RestoringSession
from device_agent.spec import PowerSpec
from device_agent.sysfs import Sysfs

Sensor = Union[Ina231Sensor, HwmonSensor]


class PowerSession(RestoringSession):
    label = "power"

    def __init__(self, spec: PowerSpec, sensors: List[Sensor], max_duration_s: float,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.spec = spec
        self.sensors = sensors
        self._max_duration_s = max_duration_s
        self._clock_ns = clock_ns
        self._started: List[Sensor] = []
        self.sampler: Optional[Sampler] = None

    @classmethod
    def open(cls, spec: PowerSpec, sysfs_root: str, max_duration_s: float,
             clock_ns: Callable[[], int] = time.monotonic_ns) -> "PowerSession":
        """Build the sensors and check their folders; ``SpecError`` lists every bad rail."""
        sysfs = Sysfs(sysfs_root)
        if not sysfs.is_dir("."):
            raise SpecError("sysfs_root: not a directory: %s" % sysfs_root)
        sensors = [_make_sensor(spec, sysfs, rail, rel) for rail, rel in spec.rails]
        problems = []
        for sensor in sensors:
            field = "power.rails.%s" % sensor.rail
            path = sysfs.path(sensor.rel_dir)
            if not sysfs.is_dir(sensor.rel_dir):
                problems.append("%s: sensor folder not found: %s" % (field, path))
                continue
            try:
                missing = sensor.missing_files()
            except SysfsError as exc:
                problems.append("%s: %s" % (field, exc))
                continue
            if missing:
                problems.append("%s: %s is not a sensor folder of kind %s (missing %s)"
                                % (field, path, spec.kind, ", ".join(missing)))
        if problems:
            raise SpecError("; ".join(problems))
        return cls(spec, sensors, max_duration_s, clock_ns)

    @property
    def rails(self) -> List[str]:
        return [s.rail for s in self.sensors]

    def start(self) -> None:
        """Prepare every sensor (a sensor whose start fails half-way is still restored by ``close``)."""
        for sensor in self.sensors:
            self._started.append(sensor)
            try:
                sensor.start()
            except SysfsError as exc:
                raise type(exc)("power.rails.%s: %s" % (sensor.rail, exc))
        self.sampler = Sampler(self.sensors, self._max_duration_s, self._clock_ns)

    def window_open(self) -> None:
        if self.sampler is None:
            raise RuntimeError("power session not started")
        self.sampler.start()

    def window_close(self) -> None:
        if self.sampler is not None:
            self.sampler.request_stop()

    def finish(self) -> List[Sample]:
        """The samples of the window; every rail must have at least one."""
        if self.sampler is None:
            raise RuntimeError("power session not started")
        samples = self.sampler.stop()
        counted = {s.rail for s in samples}
        for sensor in self.sensors:
            if sensor.rail not in counted:
                raise SysfsError(
                    "power.rails.%s: no conversion read during the window (%s): the sensor is not converting"
                    % (sensor.rail, _gate_counts(sensor))
                )
        return samples

    def close(self) -> None:
        """Stop the sampler if it runs, then restore every started sensor; raise the first failure."""
        self._stop_sampler()
        self._unwind(self._started, lambda sensor: sensor.stop(), (SysfsError,),
                     lambda sensor, exc: "power.rails.%s: cannot restore the sensor: %s" % (sensor.rail, exc))


def _make_sensor(spec: PowerSpec, sysfs: Sysfs, rail: str, rel: str) -> Sensor:
    if spec.kind == ina231.KIND:
        return Ina231Sensor(sysfs, rail, rel, spec.update_period_us)
    if spec.kind == hwmon.KIND:
        return HwmonSensor(sysfs, rail, rel)
    raise ValueError("unknown power kind %r" % spec.kind)


def _gate_counts(sensor: Sensor) -> str:
    gate = sensor.gate
    if gate is None:
        return "not started"
    return "%d all-zero reading(s), %d repeated, %d torn" % (gate.zeros, gate.duplicates, gate.torn)
