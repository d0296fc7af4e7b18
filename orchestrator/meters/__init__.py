"""Power meters: drivers returning :class:`PowerTrace` objects on the controller clock.

``METERS`` maps the meter kind used in configuration files to its driver class.
The virtual instrument (``orchestrator.meters.virtual_b2900``, with its power
sources in ``orchestrator.meters.activity`` and its SCPI parser in
``orchestrator.meters.scpi_syntax``) is not imported here: only tests and local
dry runs need it.
"""

from __future__ import annotations

from typing import Protocol

from .b2900 import B2900Meter
from .energy import PowerTrace, energy_j, mean_power_w

__all__ = ["METERS", "Meter", "B2900Meter", "PowerTrace", "energy_j", "mean_power_w"]


class Meter(Protocol):
    """What the orchestrator expects of a power meter driver."""

    def identify(self) -> str: ...

    def configure(self, points: int) -> None: ...

    def start(self) -> float: ...

    def fetch(self) -> PowerTrace: ...

    def abort_and_fetch(self) -> PowerTrace: ...

    def measure_window(self, duration_s: float) -> PowerTrace: ...

    def close(self) -> None: ...


METERS: dict[str, type] = {"b2900": B2900Meter}
