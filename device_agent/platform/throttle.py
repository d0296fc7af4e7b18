"""Per-domain statistics of the platform samples over the window (pure).

Each sample's value is held until the next sample of the same domain (the
last one until the window end; the first one back to the window start).
For a held domain, ``below_s`` is the time it spent below its held frequency
inside ``[start_ns, end_ns]``; for a watched one, the time it was throttled
(``platform/watch.py`` defines when).
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from device_agent.platform.sampler import CUR_FREQ_KHZ, LIMIT_KHZ, TEMP_MDEGC, PlatformSample
from device_agent.verdict import FreqHeld, FreqWatched

_NS_PER_S = 1e9


def _series(samples: Sequence[PlatformSample], name: str, quantity: str) -> List[PlatformSample]:
    return [s for s in samples if s.name == name and s.quantity == quantity]


def _spans(times: Sequence[int], start_ns: int, end_ns: int) -> Iterator[Tuple[int, int]]:
    """(index, ns) of the part of the window each sample holds for (samples that hold for none skipped)."""
    for i, t in enumerate(times):
        t0 = start_ns if i == 0 else max(t, start_ns)  # the first sample is held back to the start
        t1 = end_ns if i + 1 == len(times) else min(times[i + 1], end_ns)
        if t1 > t0:
            yield i, t1 - t0


def _stats(values: Sequence[int], low: Sequence[bool], times: Sequence[int], start_ns: int, end_ns: int) -> Dict:
    weighted = 0.0
    total_ns = 0
    below_ns = 0
    below_min = None  # type: Optional[int]
    seen = []
    for i, span in _spans(times, start_ns, end_ns):
        seen.append(values[i])
        weighted += values[i] * span
        total_ns += span
        if low[i]:
            below_ns += span
            below_min = values[i] if below_min is None else min(below_min, values[i])
    return {
        "samples": len(values),
        "min_khz": min(seen) if seen else None,
        "mean_khz": weighted / total_ns if total_ns else None,
        "below_s": below_ns / _NS_PER_S,
        "below_min_khz": below_min,
    }


def freq_stats(samples: Sequence[PlatformSample], name: str, held_khz: int, start_ns: int, end_ns: int) -> Dict:
    """``samples``, ``min_khz``, ``mean_khz`` (time-weighted over the window), ``below_s``, ``below_min_khz``."""
    series = _series(samples, name, CUR_FREQ_KHZ)
    values = [s.value for s in series]
    return _stats(values, [v < held_khz for v in values], [s.t_mono_ns for s in series], start_ns, end_ns)


def watch_stats(samples: Sequence[PlatformSample], name: str, max_khz: int, cur_bound: bool,
                start_ns: int, end_ns: int) -> Dict:
    """As ``freq_stats`` for a watched domain, plus ``limit_min_khz`` (the lowest limit in the window).

    ``below_s`` is the time the domain was throttled: its limit below ``max_khz``, or (``cur_bound``) its
    current frequency below its limit. The sampler reads one current frequency and one limit per round:
    the n-th of each belong together.
    """
    cur = _series(samples, name, CUR_FREQ_KHZ)
    limit = _series(samples, name, LIMIT_KHZ)
    pairs = list(zip(cur, limit))
    values = [c.value for c, _ in pairs]
    limits = [lim.value for _, lim in pairs]
    low = [lim < max_khz or (cur_bound and v < lim) for v, lim in zip(values, limits)]
    times = [c.t_mono_ns for c, _ in pairs]
    out = _stats(values, low, times, start_ns, end_ns)
    in_window = [limits[i] for i, _ in _spans(times, start_ns, end_ns)]
    out["limit_min_khz"] = min(in_window) if in_window else None
    return out


def temp_stats(samples: Sequence[PlatformSample], zone: str) -> Dict:
    """``samples``, ``max_mdegc``, ``mean_mdegc`` and ``start_mdegc`` (the first sample: the window's start)."""
    values = [s.value for s in _series(samples, zone, TEMP_MDEGC)]
    if not values:
        return {"samples": 0, "max_mdegc": None, "mean_mdegc": None, "start_mdegc": None}
    return {"samples": len(values), "max_mdegc": max(values), "mean_mdegc": float(sum(values)) / len(values),
            "start_mdegc": values[0]}


def freq_held(name: str, held_khz: int, stats: Dict) -> FreqHeld:
    """The fact ``judge()`` checks for a held domain."""
    low = stats["below_min_khz"]
    return FreqHeld(domain=name, held_khz=held_khz, below_s=stats["below_s"],
                    min_khz=low if low is not None else held_khz)


def freq_watched(name: str, max_khz: int, stats: Dict) -> FreqWatched:
    """The fact ``judge()`` checks for a watched domain."""
    low = stats["below_min_khz"]
    limit = stats["limit_min_khz"]
    return FreqWatched(domain=name, max_khz=max_khz, below_s=stats["below_s"],
                       min_khz=low if low is not None else max_khz,
                       limit_min_khz=limit if limit is not None else max_khz)
