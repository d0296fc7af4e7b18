"""Power traces and their energy integrals.

``PowerTrace`` is what every meter driver returns. ``window_energy`` is the
only integral of power over a measurement window in socfarm: the results row
of a job and the report of a run both call it on the same stored samples, so a
figure means the same in Parquet and in the report. ``energy_j`` is the same
integral over one trace.

Times are seconds on the controller's ``time.monotonic()`` clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PowerTrace", "covered", "energy_j", "mean_power_w", "window_energy"]

#: Slack allowed when a window edge falls a hair outside the trace because of
#: floating-point rounding of the times (1 ns, far below any meter's resolution).
_EDGE_EPS_S = 1e-9


def _frozen_array(values, name: str) -> np.ndarray:
    arr = np.array(values, dtype=np.float64, copy=True).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"PowerTrace.{name} holds non-finite values")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class PowerTrace:
    """One acquisition of a meter, on the controller's monotonic clock.

    ``t_mono_s[i]`` is the centre of the integration window (aperture) of point
    ``i``; ``current_a[i]`` the mean current over that window; ``power_w`` is
    ``current_a * voltage_v``. The arrays are read-only copies.

    Optional metadata: ``aperture_s`` and ``interval_s`` as programmed, and
    ``t_uncertainty_s``, the half-width of the interval in which the meter's
    acquisition start is known to lie on the controller clock.
    """

    t_mono_s: np.ndarray
    current_a: np.ndarray
    voltage_v: float
    power_w: np.ndarray
    aperture_s: float = math.nan
    interval_s: float = math.nan
    t_uncertainty_s: float = 0.0
    resource: str = ""

    def __post_init__(self) -> None:
        t = _frozen_array(self.t_mono_s, "t_mono_s")
        i = _frozen_array(self.current_a, "current_a")
        p = _frozen_array(self.power_w, "power_w")
        if not (t.shape == i.shape == p.shape):
            raise ValueError(
                f"PowerTrace arrays differ in length: t={t.size} current={i.size} power={p.size}"
            )
        if t.size > 1 and not np.all(np.diff(t) > 0):
            raise ValueError("PowerTrace.t_mono_s must be strictly increasing")
        object.__setattr__(self, "t_mono_s", t)
        object.__setattr__(self, "current_a", i)
        object.__setattr__(self, "power_w", p)
        object.__setattr__(self, "voltage_v", float(self.voltage_v))

    @classmethod
    def from_current(cls, t_mono_s, current_a, voltage_v: float, **meta) -> "PowerTrace":
        """Build a trace from currents measured at a constant source voltage."""
        i = np.asarray(current_a, dtype=np.float64)
        return cls(t_mono_s=t_mono_s, current_a=i, voltage_v=voltage_v, power_w=i * float(voltage_v), **meta)

    def __len__(self) -> int:
        return int(self.t_mono_s.size)

    @property
    def t_start_s(self) -> float:
        return float(self.t_mono_s[0])

    @property
    def t_end_s(self) -> float:
        return float(self.t_mono_s[-1])

    @property
    def duration_s(self) -> float:
        return float(self.t_mono_s[-1] - self.t_mono_s[0]) if len(self) else 0.0


def window_energy(t_s: np.ndarray, p_w: np.ndarray, codes: np.ndarray, t0_s: np.ndarray, t1_s: np.ndarray,
                  ngroups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy over each group's window: the one integral of socfarm (results rows and reports alike).

    ``codes[i]`` is the group of sample ``(t_s[i], p_w[i])``; ``t0_s[g], t1_s[g]``
    the window of group ``g``. Power is linear between two samples (trapezoid
    rule), and the samples' linear interpolation sets the values at window
    edges that fall between samples, so the result does not depend on where
    the edges fall. Outside its first/last sample a group's power is held at
    that sample's value; :func:`covered` says whether that hold is allowed
    (none for a meter, whose samples must reach both edges; one conversion
    period for on-board sensors, which yield one sample per conversion), so a
    figure is only used where it spans the whole window. Returns (energy_j, first sample time, last
    sample time) per group; energy is NaN for groups without two samples.
    Vectorized: a report integrates 10^8 samples with it.
    """
    t_s = np.asarray(t_s, dtype=np.float64)
    p_w = np.asarray(p_w, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    t0_s = np.asarray(t0_s, dtype=np.float64)
    t1_s = np.asarray(t1_s, dtype=np.float64)
    n = t_s.size
    tmin = np.full(ngroups, np.nan)
    tmax = np.full(ngroups, np.nan)
    if n == 0:
        return np.full(ngroups, np.nan), tmin, tmax
    # sort by (group, time) unless already sorted (the store writes each job's samples in time order)
    span = np.diff(t_s)
    dc = np.diff(codes)
    if (dc < 0).any() or ((span < 0) & (dc == 0)).any():
        order = np.lexsort((t_s, codes))
        t_s, p_w, codes = t_s[order], p_w[order], codes[order]
        span = np.diff(t_s)
    del dc
    counts = np.bincount(codes, minlength=ngroups)
    ends = np.cumsum(counts)  # one past the last sample of each group
    starts = ends - counts
    present = counts > 0
    tmin[present] = t_s[starts[present]]
    tmax[present] = t_s[ends[present] - 1]
    # segment i joins samples i and i+1 (cross-group segments are never summed below)
    a, b = t_s[:-1], t_s[1:]
    lo = np.maximum(a, np.repeat(t0_s, counts)[:-1])
    hi = np.minimum(b, np.repeat(t1_s, counts)[:-1])
    width = hi - lo
    np.maximum(width, 0.0, out=width)
    # a segment inside the window: trapezoid; one cut by a window edge: the linear interpolation's
    # trapezoid over the part inside (= width x power at the part's midpoint)
    area = p_w[:-1] + p_w[1:]
    area *= width
    area *= 0.5
    part = np.flatnonzero((width > 0) & (width < span))
    if part.size:
        pa_, pb_ = p_w[part], p_w[part + 1]
        mid = (lo[part] + hi[part]) / 2
        area[part] = width[part] * (pa_ + (pb_ - pa_) * (mid - a[part]) / span[part])
    area[~np.isfinite(area)] = 0.0
    cs = np.concatenate(([0.0], np.cumsum(area)))
    # segments of group g: starts[g] .. ends[g] - 2
    last_seg = np.maximum(ends - 1, starts)
    energy = cs[last_seg] - cs[starts]
    # power held before the first and after the last sample (nothing when the samples reach the edges)
    if present.any():
        first_p = np.zeros(ngroups)
        last_p = np.zeros(ngroups)
        first_p[present] = p_w[starts[present]]
        last_p[present] = p_w[ends[present] - 1]
        with np.errstate(invalid="ignore"):
            before = np.clip(np.minimum(tmin, t1_s) - t0_s, 0.0, None)
            after = np.clip(t1_s - np.maximum(tmax, t0_s), 0.0, None)
        held = np.nan_to_num(before) * first_p + np.nan_to_num(after) * last_p
        energy = energy + held
    energy[counts < 2] = np.nan
    return energy, tmin, tmax


def covered(tmin: np.ndarray, tmax: np.ndarray, t0_s: np.ndarray, t1_s: np.ndarray,
            hold_s: float | np.ndarray = 0.0) -> np.ndarray:
    """Whether each group's samples (first ``tmin``, last ``tmax``) span its window ``[t0_s, t1_s]``,
    allowing ``hold_s`` of held power at either edge (see :func:`window_energy`)."""
    hold = np.asarray(hold_s, dtype=np.float64) + _EDGE_EPS_S
    with np.errstate(invalid="ignore"):
        return (np.asarray(tmin) <= np.asarray(t0_s) + hold) & (np.asarray(tmax) >= np.asarray(t1_s) - hold) & (
            np.asarray(t1_s) > np.asarray(t0_s))


def energy_j(trace: PowerTrace, t0: float, t1: float) -> float:
    """Energy in joules delivered over exactly ``[t0, t1]`` (controller clock): :func:`window_energy`
    of one group. The window must lie within the trace: no extrapolation. ``t0 == t1`` gives 0.0.
    """
    t0 = float(t0)
    t1 = float(t1)
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"energy window must be finite, got [{t0}, {t1}]")
    if t1 < t0:
        raise ValueError(f"energy window ends before it starts: [{t0!r}, {t1!r}]")
    t = trace.t_mono_s
    if t.size < 2:
        raise ValueError(f"trace has {t.size} point(s); at least 2 are needed to integrate")
    if t0 < t[0] - _EDGE_EPS_S or t1 > t[-1] + _EDGE_EPS_S:
        raise ValueError(
            f"energy window [{t0:.6f}, {t1:.6f}] s is not inside the trace "
            f"[{t[0]:.6f}, {t[-1]:.6f}] s (no extrapolation)"
        )
    if t1 == t0:
        return 0.0
    energy, _, _ = window_energy(t, trace.power_w, np.zeros(t.size, dtype=np.int64), np.array([t0]),
                                 np.array([t1]), 1)
    return float(energy[0])


def mean_power_w(trace: PowerTrace, t0: float, t1: float) -> float:
    """Mean power over ``[t0, t1]``: ``energy_j / (t1 - t0)``."""
    if not t1 > t0:
        raise ValueError(f"mean power needs t1 > t0, got [{t0!r}, {t1!r}]")
    return energy_j(trace, t0, t1) / (float(t1) - float(t0))
