"""What every power sensor offers, and what it yields: ``Sample`` (SI units)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol


@dataclass(frozen=True)
class Sample:
    """One sensor conversion: ``power_w`` read at ``t_mono_ns`` (``time.monotonic_ns()``)."""

    rail: str
    t_mono_ns: int
    power_w: float


class PowerSensor(Protocol):
    """One rail's sensor.

    ``start()`` prepares the sensor (enable, conversion period) and must be
    undone by ``stop()``, which restores what ``start()`` changed; ``stop()``
    is safe to call after a ``start()`` that failed half-way, and more than
    once. ``period_ns`` (known after ``start()``) is the sensor's conversion
    period. ``poll(now_ns)`` returns a ``Sample`` only when the sensor holds a
    conversion not yet returned, else ``None``; it raises ``SysfsError`` when
    the sensor cannot be read.
    """

    rail: str

    @property
    def period_ns(self) -> int: ...

    def start(self) -> None: ...

    def poll(self, now_ns: int) -> Optional[Sample]: ...

    def stop(self) -> None: ...
