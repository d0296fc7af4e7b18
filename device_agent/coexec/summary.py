"""Co-execution summary fields (pure): shares, per-component throughput, reorder delays, gains."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from device_agent.stats import PERCENTILES

_NS_PER_S = 1e9
_NS_PER_MS = 1e6


def _counts(worker: Sequence[int], n: int) -> List[int]:
    # np.intp: bincount takes only the platform's index type (int64 input fails on 32-bit numpy).
    return [int(x) for x in np.bincount(np.asarray(worker, dtype=np.intp), minlength=n)] if len(worker) else [0] * n


def per_component(names: Sequence[str], worker: Sequence[int], duration_ns: int,
                  tail_worker: Sequence[int] = ()) -> Dict[str, Dict[str, Any]]:
    """Frames, share (%) and throughput of each component over the window (``worker``: of each frame in
    the window), and its ``tail_frames``: frames it finished after the close (``tail_worker``), not counted."""
    total = len(worker)
    counts = _counts(worker, len(names))
    tail = _counts(tail_worker, len(names))
    out = {}
    for i, name in enumerate(names):
        frames = counts[i]
        out[name] = {
            "frames": frames,
            "share_pct": 100.0 * frames / total if total else 0.0,
            "throughput_ips": frames / (duration_ns / _NS_PER_S),
            "tail_frames": tail[i],
        }
    return out


def reorder_delay_ms(delay_ns: Sequence[int]) -> Dict[str, float]:
    d = np.asarray(delay_ns, dtype=np.int64) / _NS_PER_MS
    p50, p90, p99 = np.percentile(d, PERCENTILES)
    return {"mean": float(d.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(d.max())}


def gains(throughput_ips: float, isolated_ips: Sequence[Tuple[str, float]]) -> Dict[str, Any]:
    """Gain over the best single component and ratio to the sum of isolated throughputs."""
    values: List[float] = [v for _, v in isolated_ips]
    best_name, best = max(isolated_ips, key=lambda kv: kv[1])
    return {
        "isolated_ips": dict(isolated_ips),
        "best_single": best_name,
        "gain_over_best_single": throughput_ips / best,
        "ratio_to_sum_isolated": throughput_ips / sum(values),
    }
