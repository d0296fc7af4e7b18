"""``power.csv``: one row per power sample (``rail,t_mono_ns,power_w``), written atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

from device_agent.atomicfile import write_atomic
from device_agent.power.base import Sample

POWER_NAME = "power.csv"
HEADER = "rail,t_mono_ns,power_w\n"
_ROWS_PER_CHUNK = 4096


@dataclass(frozen=True)
class PowerFile:
    path: str
    sha256: str
    rows: int


def write_power(output_dir: str, samples: Sequence[Sample]) -> PowerFile:
    """Write ``<output_dir>/power.csv``, samples in the order given (as taken: by time)."""
    path = os.path.join(output_dir, POWER_NAME)
    sha256 = write_atomic(path, _chunks(samples))
    return PowerFile(path=path, sha256=sha256, rows=len(samples))


def _chunks(samples: Sequence[Sample]) -> Iterator[str]:
    yield HEADER
    for first in range(0, len(samples), _ROWS_PER_CHUNK):
        yield "".join(
            "%s,%d,%r\n" % (s.rail, s.t_mono_ns, float(s.power_w)) for s in samples[first:first + _ROWS_PER_CHUNK]
        )
