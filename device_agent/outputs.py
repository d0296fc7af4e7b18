"""Parts of a summary shared by every command that measures a window (``run``, co-execution, ``idle``):
the output folder, the window's timestamps on both clocks, the power block."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List

from device_agent.errors import OutputError, SpecError
from device_agent.power.base import Sample
from device_agent.power.energy import rail_stats
from device_agent.power.powerfile import write_power


def make_output_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise SpecError("output_dir: cannot create %s: %s" % (path, exc))
    if not os.access(path, os.W_OK):
        raise SpecError("output_dir: %s is not writable" % path)


def wall_offset(clock_ns: Callable[[], int]) -> int:
    """time.time_ns() - clock_ns(), read between two clock reads (midpoint)."""
    before = clock_ns()
    wall = time.time_ns()
    after = clock_ns()
    return wall - (before + after) // 2


def window_fields(start_ns: int, end_ns: int, wall_offset_ns: int) -> Dict[str, int]:
    return {"start_mono_ns": start_ns, "end_mono_ns": end_ns,
            "start_wall_ns": start_ns + wall_offset_ns, "end_wall_ns": end_ns + wall_offset_ns}


def power_fields(output_dir: str, kind: str, rails: List[str], samples: List[Sample],
                  start_ns: int, end_ns: int) -> Dict[str, Any]:
    """``power.csv`` written, and the summary's ``power`` block."""
    try:
        written = write_power(output_dir, samples)
    except OSError as exc:
        raise OutputError("cannot write power samples in %s: %s" % (output_dir, exc))
    stats = rail_stats(samples, rails, start_ns, end_ns)
    return {
        "kind": kind,
        "path": written.path,
        "sha256": written.sha256,
        "rows": written.rows,
        "rails": {rail: s.as_dict() for rail, s in stats.items()},
    }
