"""``trace.csv`` of a co-execution: one row per frame in frame order, with the worker that did it and
whether the window counts it (``in_window``: 1, or 0 for a frame of the tail finished after the close)."""

from __future__ import annotations

import os
from typing import Iterator, Sequence

from device_agent.atomicfile import write_atomic
from device_agent.trace import TRACE_NAME, TraceFile

HEADER = "index,start_mono_ns,end_mono_ns,worker,reorder_delay_ns,in_window\n"
_ROWS_PER_CHUNK = 4096


def write_coexec_trace(output_dir: str, names: Sequence[str], worker: Sequence[int], start_ns: Sequence[int],
                       end_ns: Sequence[int], delay_ns: Sequence[int], in_window: Sequence[bool]) -> TraceFile:
    path = os.path.join(output_dir, TRACE_NAME)

    def chunks() -> Iterator[str]:
        yield HEADER
        n = len(worker)
        for first in range(0, n, _ROWS_PER_CHUNK):
            yield "".join("%d,%d,%d,%s,%d,%d\n" % (i, start_ns[i], end_ns[i], names[worker[i]], delay_ns[i],
                                                 in_window[i])
                          for i in range(first, min(first + _ROWS_PER_CHUNK, n)))

    sha256 = write_atomic(path, chunks())
    return TraceFile(path=path, sha256=sha256, rows=len(worker))
