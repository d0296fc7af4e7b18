"""``trace.csv``: one row per measured inference, written atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

from device_agent.atomicfile import write_atomic

TRACE_NAME = "trace.csv"
HEADER = "index,start_mono_ns,end_mono_ns\n"
_ROWS_PER_CHUNK = 4096


@dataclass(frozen=True)
class TraceFile:
    path: str
    sha256: str
    rows: int


def write_trace(output_dir: str, start_ns: Sequence[int], end_ns: Sequence[int]) -> TraceFile:
    """Write ``<output_dir>/trace.csv`` via a temporary file + rename; hash what was written."""
    if len(start_ns) != len(end_ns):
        raise ValueError("start_ns and end_ns differ in length")
    path = os.path.join(output_dir, TRACE_NAME)
    sha256 = write_atomic(path, _chunks(start_ns, end_ns))
    return TraceFile(path=path, sha256=sha256, rows=len(start_ns))


def _chunks(start_ns: Sequence[int], end_ns: Sequence[int]) -> Iterator[str]:
    yield HEADER
    n = len(start_ns)
    for first in range(0, n, _ROWS_PER_CHUNK):
        last = min(first + _ROWS_PER_CHUNK, n)
        yield "".join("%d,%d,%d\n" % (i, start_ns[i], end_ns[i]) for i in range(first, last))
