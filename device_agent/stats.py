"""Latency percentiles and throughput of a measurement window.

The percentiles are numpy's default ("linear", as ``numpy.percentile``), to the bit, with or without
numpy: a job whose runtime imported numpy summarises with it (0.09 s for 10^6 inferences against 0.5 s in
plain Python); a board whose components are all simulated runs its jobs without ever importing numpy
(~0.15 s of CPU per agent, which a farm of virtual boards would all spend at once on one machine).
"""

from __future__ import annotations

import math
import sys
from typing import Dict, List, Sequence

_NS_PER_MS = 1e6
_NS_PER_S = 1e9
PERCENTILES = (50, 90, 99)


def latency_ms(start_ns: Sequence[int], end_ns: Sequence[int]) -> Dict[str, float]:
    """Mean, p50, p90, p99, min and max of the per-inference durations, in ms."""
    if len(start_ns) != len(end_ns):
        raise ValueError("%d starts but %d ends" % (len(start_ns), len(end_ns)))
    if not len(start_ns):
        raise ValueError("no inferences to summarise")
    np = sys.modules.get("numpy")  # imported by the job's runtime already, or not at all
    if np is not None:
        durations = (np.asarray(end_ns, dtype=np.int64) - np.asarray(start_ns, dtype=np.int64)) / _NS_PER_MS
        p50, p90, p99 = np.percentile(durations, PERCENTILES)
        mean, low, high = durations.mean(), durations.min(), durations.max()
    else:
        ordered = sorted((int(e) - int(s)) / _NS_PER_MS for s, e in zip(start_ns, end_ns))
        p50, p90, p99 = (percentile(ordered, p) for p in PERCENTILES)
        mean, low, high = math.fsum(ordered) / len(ordered), ordered[0], ordered[-1]
    return {"mean": float(mean), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "min": float(low), "max": float(high)}


def percentile(ordered: List[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of ``ordered`` (sorted, not empty) as ``numpy.percentile`` gives it:
    linear interpolation between the two closest ranks, computed in numpy's order of operations."""
    n = len(ordered)
    virtual = (n - 1) * (p / 100)
    if virtual >= n - 1:
        return float(ordered[-1])
    below = math.floor(virtual)
    a, b = ordered[below], ordered[below + 1]
    gamma = virtual - below
    diff = b - a
    return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)


def throughput_ips(count: int, duration_ns: int) -> float:
    """Inferences per second: count / duration_s (duration_s = window length)."""
    if duration_ns <= 0:
        raise ValueError("window duration must be > 0 ns, got %d" % duration_ns)
    return count / (duration_ns / _NS_PER_S)
