"""One sample per sensor conversion: never the same conversion twice.

A sensor converts once per ``period_ns`` and its driver shows the latest
conversion until the next one. ``ConversionGate`` decides which readings are
new conversions:

* ``due(now_ns)``: nothing is read before one period has passed since the
  last accepted reading (no new conversion can exist yet);
* ``offer(now_ns, reading)``: until the sensor has shown a non-zero reading,
  all-zero readings mean "not converting yet" (stale values of a disabled
  sensor) and are not counted; a reading identical in every field to the
  last accepted one, less than two periods after it, is the same conversion
  read again (the driver's update ran late) and is not counted, the caller
  polls again a little later; any other reading is accepted.

Accepted readings are at least ``period_ns`` apart, so over an elapsed time
``E`` at most ``E / period + 1`` readings are accepted.

``read_conversion()`` reads a sensor's files twice in a row: when the two
passes differ, the driver published a new conversion in the middle of the
read (the reading could mix two conversions), and it is dropped (``torn``);
the next poll reads again.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from device_agent.power.base import Sample
from device_agent.sysfs import Sysfs

Reading = Tuple[float, ...]


class ConversionGate:
    """Accepts at most one reading per conversion of a sensor with period ``period_ns``."""

    def __init__(self, period_ns: int) -> None:
        if period_ns <= 0:
            raise ValueError("conversion period must be > 0 ns, got %d" % period_ns)
        self.period_ns = period_ns
        self.accepted = 0
        self.duplicates = 0
        self.zeros = 0
        self.torn = 0
        self._last_ns: Optional[int] = None
        self._last: Optional[Reading] = None
        self._converting = False

    def due(self, now_ns: int) -> bool:
        """True when a conversion newer than the last accepted one can exist."""
        return self._last_ns is None or now_ns - self._last_ns >= self.period_ns

    def offer(self, now_ns: int, reading: Reading) -> bool:
        """Record ``reading`` taken at ``now_ns`` (after ``due``); True if it is a new conversion."""
        if not self._converting:
            if all(v == 0 for v in reading):
                self.zeros += 1
                return False
            self._converting = True
        if (self._last is not None and self._last_ns is not None and reading == self._last
                and now_ns - self._last_ns < 2 * self.period_ns):
            self.duplicates += 1
            return False
        self._last_ns = now_ns
        self._last = reading
        self.accepted += 1
        return True


def read_conversion(sysfs: Sysfs, rels: Sequence[str], gate: ConversionGate) -> Optional[Reading]:
    """The sensor's values (files ``rels``, power first), or ``None`` for a torn read."""
    first = tuple(sysfs.read_float(rel) for rel in rels)
    again = tuple(sysfs.read_float(rel) for rel in rels)
    if again != first:
        gate.torn += 1
        return None
    return first


def gated_sample(sysfs: Sysfs, rels: Sequence[str], gate: ConversionGate, now_ns: int, rail: str,
                 watts_per_unit: float) -> Optional[Sample]:
    """A new sample if a new conversion is due and was read cleanly (the first file holds power)."""
    if not gate.due(now_ns):
        return None
    reading = read_conversion(sysfs, rels, gate)
    if reading is None or not gate.offer(now_ns, reading):
        return None
    return Sample(rail, now_ns, reading[0] * watts_per_unit)
