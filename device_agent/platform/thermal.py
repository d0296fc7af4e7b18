"""Thermal zones (``class/thermal/thermal_zoneN/temp``, millidegrees Celsius)."""

from __future__ import annotations

from device_agent.errors import SpecError
from device_agent.sysfs import Sysfs

THERMAL_DIR = "class/thermal"


def zone_temp_rel(zone: str) -> str:
    return "%s/%s/temp" % (THERMAL_DIR, zone)


def check_zone(sysfs: Sysfs, zone: str, field: str) -> None:
    rel = zone_temp_rel(zone)
    if not sysfs.is_file(rel):
        raise SpecError("%s: no thermal zone %s (no file %s)" % (field, zone, sysfs.path(rel)))
    sysfs.read_int(rel)


def read_temp_mdegc(sysfs: Sysfs, zone: str) -> int:
    return sysfs.read_int(zone_temp_rel(zone))
