"""Per-rail statistics over the measurement window: samples, mean power, energy.

Power between two samples is taken as linear (trapezoid rule); before the
first sample and after the last one it is held at that sample's value, so the
integral always spans exactly the window ``[start_ns, end_ns]``. Samples
taken just outside the window (the sampler starts right before it opens and
polls once more right after it closes) set the values at the window edges
by interpolation. ``mean_w`` is the time-weighted mean, ``energy_j /
duration_s``.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence

from device_agent.power.base import Sample

_NS_PER_S = 1e9


@dataclass(frozen=True)
class RailStats:
    samples: int
    mean_w: float
    energy_j: float

    def as_dict(self) -> Dict[str, float]:
        return {"samples": self.samples, "mean_w": self.mean_w, "energy_j": self.energy_j}


def energy_j(t_ns: Sequence[int], power_w: Sequence[float], start_ns: int, end_ns: int) -> float:
    """Energy over ``[start_ns, end_ns]`` of the samples ``(t_ns[i], power_w[i])`` (t ascending)."""
    if not t_ns or len(t_ns) != len(power_w):
        raise ValueError("energy needs at least one sample and as many times as values")
    if end_ns < start_ns:
        raise ValueError("window ends before it starts: [%d, %d]" % (start_ns, end_ns))
    first = bisect.bisect_right(t_ns, start_ns)  # first sample strictly inside
    last = bisect.bisect_left(t_ns, end_ns)  # first sample at or after the end
    ts = [start_ns] + list(t_ns[first:last]) + [end_ns]
    ps = [_value_at(t_ns, power_w, start_ns)] + list(power_w[first:last]) + [_value_at(t_ns, power_w, end_ns)]
    total = 0.0
    for i in range(len(ts) - 1):
        total += (ps[i] + ps[i + 1]) * 0.5 * (ts[i + 1] - ts[i])
    return total / _NS_PER_S


def rail_stats(samples: Iterable[Sample], rails: Sequence[str], start_ns: int, end_ns: int) -> Dict[str, RailStats]:
    """``RailStats`` of every rail, in the order of ``rails``; a rail without samples raises ``ValueError``."""
    by_rail: Dict[str, List[Sample]] = OrderedDict((rail, []) for rail in rails)
    for s in samples:
        by_rail[s.rail].append(s)
    duration_s = (end_ns - start_ns) / _NS_PER_S
    stats: Dict[str, RailStats] = OrderedDict()
    for rail, rows in by_rail.items():
        if not rows:
            raise ValueError("rail %s has no samples" % rail)
        rows.sort(key=lambda s: s.t_mono_ns)
        t_ns = [s.t_mono_ns for s in rows]
        power_w = [s.power_w for s in rows]
        energy = energy_j(t_ns, power_w, start_ns, end_ns)
        mean = energy / duration_s if duration_s > 0 else _value_at(t_ns, power_w, start_ns)
        stats[rail] = RailStats(samples=len(rows), mean_w=mean, energy_j=energy)
    return stats


def _value_at(t_ns: Sequence[int], power_w: Sequence[float], at_ns: int) -> float:
    """Linear interpolation between the neighbouring samples; held beyond the first/last."""
    if at_ns <= t_ns[0]:
        return float(power_w[0])
    if at_ns >= t_ns[-1]:
        return float(power_w[-1])
    i = bisect.bisect_right(t_ns, at_ns)  # t_ns[i - 1] <= at_ns < t_ns[i]
    t0, t1 = t_ns[i - 1], t_ns[i]
    p0, p1 = power_w[i - 1], power_w[i]
    if t1 == t0:
        return float(p1)
    return float(p0 + (p1 - p0) * (at_ns - t0) / (t1 - t0))
