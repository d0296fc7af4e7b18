"""Per-domain statistics of the platform samples over the window (pure).

Each sample's value is held until the next sample of the same domain (the
last one until the window end); ``below_s`` is the time the domain spent
below its held frequency inside ``[start_ns, end_ns]``.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

from device_agent.platform.sampler import CUR_FREQ_KHZ, TEMP_MDEGC, PlatformSample
from device_agent.verdict import FreqHeld

_NS_PER_S = 1e9


def _series(samples: Sequence[PlatformSample], name: str, quantity: str) -> List[PlatformSample]:
    return [s for s in samples if s.name == name and s.quantity == quantity]


def freq_stats(samples: Sequence[PlatformSample], name: str, held_khz: int, start_ns: int, end_ns: int) -> Dict:
    """``samples``, ``min_khz``, ``mean_khz`` (time-weighted over the window), ``below_s``, ``below_min_khz``."""
    series = _series(samples, name, CUR_FREQ_KHZ)
    weighted = 0.0
    total_ns = 0
    below_ns = 0
    below_min = None
    seen = []
    for i, s in enumerate(series):
        t0 = start_ns if i == 0 else max(s.t_mono_ns, start_ns)  # the first sample is held back to the start
        t1 = end_ns if i + 1 == len(series) else min(series[i + 1].t_mono_ns, end_ns)
        span = t1 - t0
        if span <= 0:
            continue
        seen.append(s.value)
        weighted += s.value * span
        total_ns += span
        if s.value < held_khz:
            below_ns += span
            below_min = s.value if below_min is None else min(below_min, s.value)
    return {
        "samples": len(series),
        "min_khz": min(seen) if seen else None,
        "mean_khz": weighted / total_ns if total_ns else None,
        "below_s": below_ns / _NS_PER_S,
        "below_min_khz": below_min,
    }


def temp_stats(samples: Sequence[PlatformSample], zone: str) -> Dict:
    values = [s.value for s in _series(samples, zone, TEMP_MDEGC)]
    if not values:
        return {"samples": 0, "max_mdegc": None, "mean_mdegc": None}
    return {"samples": len(values), "max_mdegc": max(values), "mean_mdegc": float(sum(values)) / len(values)}


def freq_held(name: str, held_khz: int, stats: Dict) -> FreqHeld:
    """The fact ``judge()`` checks."""
    low = stats["below_min_khz"]
    return FreqHeld(domain=name, held_khz=held_khz, below_s=stats["below_s"],
                    min_khz=low if low is not None else held_khz)
