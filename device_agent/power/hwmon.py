"""ina2xx sensors of mainline kernels: ``class/hwmon/hwmonN/``.

Files: ``power1_input`` (uW), ``curr1_input`` (mA), ``in1_input`` (bus
voltage, mV) and ``update_interval`` (conversion period, ms). ``hwmonN``
numbers can change between boots: a rail may also name the sensor's device
folder (e.g. ``bus/i2c/devices/0-0040``), whose single ``hwmon/hwmonN`` is
then used. Nothing is written: ``start()`` only reads ``update_interval``.
"""

from __future__ import annotations

from typing import List, Optional

from device_agent.errors import SysfsError
from device_agent.power.base import Sample
from device_agent.power.gate import ConversionGate, gated_sample
from device_agent.sysfs import Sysfs

KIND = "hwmon"
POWER_FILE = "power1_input"
OTHER_FILES = ("curr1_input", "in1_input")
PERIOD_FILE = "update_interval"
READ_FILES = (POWER_FILE,) + OTHER_FILES
FILES = READ_FILES + (PERIOD_FILE,)
_W_PER_UW = 1e-6
_NS_PER_MS = 1000000


class HwmonSensor:
    """One hwmon ina2xx rail; ``rel_dir`` (relative to the sysfs root) is the hwmonN or device folder."""

    def __init__(self, sysfs: Sysfs, rail: str, rel_dir: str) -> None:
        self.rail = rail
        self.rel_dir = rel_dir
        self._sysfs = sysfs
        self._gate: Optional[ConversionGate] = None

    @property
    def period_ns(self) -> int:
        return self._started_gate().period_ns

    @property
    def gate(self) -> Optional[ConversionGate]:
        return self._gate

    def resolved_dir(self) -> str:
        """``rel_dir`` itself, or its device's single ``hwmon/hwmonN`` folder."""
        base = self.rel_dir.rstrip("/")
        if self._sysfs.is_file(base + "/" + POWER_FILE) or not self._sysfs.is_dir(base + "/hwmon"):
            return base
        entries = [e for e in self._sysfs.listdir(base + "/hwmon") if e.startswith("hwmon")]
        return base + "/hwmon/" + entries[0] if len(entries) == 1 else base

    def missing_files(self) -> List[str]:
        base = self.resolved_dir()
        return [name for name in FILES if not self._sysfs.is_file(base + "/" + name)]

    def start(self) -> None:
        self.rel_dir = self.resolved_dir()
        period_rel = self._rel(PERIOD_FILE)
        period_ms = self._sysfs.read_int(period_rel)
        if period_ms <= 0:
            raise SysfsError(
                "%s: conversion period must be > 0 ms, read %d" % (self._sysfs.path(period_rel), period_ms)
            )
        self._gate = ConversionGate(period_ms * _NS_PER_MS)

    def poll(self, now_ns: int) -> Optional[Sample]:
        return gated_sample(self._sysfs, [self._rel(f) for f in READ_FILES], self._started_gate(), now_ns,
                            self.rail, _W_PER_UW)

    def stop(self) -> None:
        """Nothing to restore: ``start()`` changes nothing."""

    def _rel(self, name: str) -> str:
        return self.rel_dir + "/" + name

    def _started_gate(self) -> ConversionGate:
        if self._gate is None:
            raise RuntimeError("sensor %s not started" % self.rail)
        return self._gate
