"""Latency percentiles and throughput of a measurement window."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

_NS_PER_MS = 1e6
_NS_PER_S = 1e9
PERCENTILES = (50, 90, 99)


def latency_ms(start_ns: Sequence[int], end_ns: Sequence[int]) -> Dict[str, float]:
    """Mean, p50, p90, p99, min and max of the per-inference durations, in ms."""
    durations_ms = (np.asarray(end_ns, dtype=np.int64) - np.asarray(start_ns, dtype=np.int64)) / _NS_PER_MS
    if durations_ms.size == 0:
        raise ValueError("no inferences to summarise")
    p50, p90, p99 = np.percentile(durations_ms, PERCENTILES)
    return {
        "mean": float(durations_ms.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(durations_ms.min()),
        "max": float(durations_ms.max()),
    }


def throughput_ips(count: int, duration_ns: int) -> float:
    """Inferences per second: count / duration_s (duration_s = window length)."""
    if duration_ns <= 0:
        raise ValueError("window duration must be > 0 ns, got %d" % duration_ns)
    return count / (duration_ns / _NS_PER_S)
