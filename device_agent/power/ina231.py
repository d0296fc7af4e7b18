"""INA231 sensors of the vendor kernel (Odroid XU3): ``bus/i2c/drivers/INA231/<bus>-00<addr>/``.

Files: ``sensor_W``, ``sensor_A``, ``sensor_V`` (decimal W, A, V as text),
``enable`` (1 = converting; values are stale or zero while 0) and
``update_period`` (conversion period in us, default 263808).

``start()`` remembers ``enable`` and ``update_period``, sets
``update_period`` when the spec asks for one (verified by reading back),
writes ``enable`` = 1 (verified), then reads ``update_period`` to know the
conversion period. ``stop()`` puts back what ``start()`` changed.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from device_agent.errors import SysfsError
from device_agent.power.base import Sample
from device_agent.power.gate import ConversionGate, gated_sample
from device_agent.sysfs import Sysfs

KIND = "ina231"
POWER_FILE = "sensor_W"
OTHER_FILES = ("sensor_A", "sensor_V")
ENABLE_FILE = "enable"
PERIOD_FILE = "update_period"
READ_FILES = (POWER_FILE,) + OTHER_FILES
FILES = READ_FILES + (ENABLE_FILE, PERIOD_FILE)
_NS_PER_US = 1000


class Ina231Sensor:
    """One INA231 rail; ``rel_dir`` is relative to the sysfs root."""

    def __init__(self, sysfs: Sysfs, rail: str, rel_dir: str, update_period_us: Optional[int] = None) -> None:
        self.rail = rail
        self.rel_dir = rel_dir
        self._sysfs = sysfs
        self._update_period_us = update_period_us
        self._restore: List[Tuple[str, int]] = []  # (file, previous value), in the order changed
        self._gate: Optional[ConversionGate] = None

    @property
    def period_ns(self) -> int:
        return self._started_gate().period_ns

    @property
    def gate(self) -> Optional[ConversionGate]:
        return self._gate

    def missing_files(self) -> List[str]:
        return [name for name in FILES if not self._sysfs.is_file(self._rel(name))]

    def start(self) -> None:
        enable_rel = self._rel(ENABLE_FILE)
        period_rel = self._rel(PERIOD_FILE)
        previous_enable = self._sysfs.read_int(enable_rel)
        previous_period_us = self._sysfs.read_int(period_rel)
        wanted = self._update_period_us
        if wanted is not None and wanted != previous_period_us:
            self._restore.append((period_rel, previous_period_us))
            self._sysfs.write(period_rel, wanted)
        if previous_enable != 1:
            self._restore.append((enable_rel, previous_enable))
            self._sysfs.write(enable_rel, 1)
        period_us = self._sysfs.read_int(period_rel)
        if period_us <= 0:
            raise SysfsError(
                "%s: conversion period must be > 0 us, read %d" % (self._sysfs.path(period_rel), period_us)
            )
        self._gate = ConversionGate(period_us * _NS_PER_US)

    def poll(self, now_ns: int) -> Optional[Sample]:
        return gated_sample(self._sysfs, [self._rel(f) for f in READ_FILES], self._started_gate(), now_ns,
                            self.rail, 1.0)

    def stop(self) -> None:
        """Restore, newest change first; every change is tried, the first failure is raised."""
        first_error: Optional[SysfsError] = None
        while self._restore:
            rel, value = self._restore.pop()
            try:
                self._sysfs.write(rel, value)
            except SysfsError as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def _rel(self, name: str) -> str:
        return self.rel_dir.rstrip("/") + "/" + name

    def _started_gate(self) -> ConversionGate:
        if self._gate is None:
            raise RuntimeError("sensor %s not started" % self.rail)
        return self._gate
