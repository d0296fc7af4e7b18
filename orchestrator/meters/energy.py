"""Power traces and their energy integrals.

``PowerTrace`` is what every meter driver returns; ``energy_j`` integrates one
over an exact window. Both live here (and not in a driver module) because the
analysis code reuses them on stored traces.

Times are seconds on the controller's ``time.monotonic()`` clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PowerTrace", "energy_j", "mean_power_w"]

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


def _edge_value(t: np.ndarray, p: np.ndarray, x: float) -> float:
    return float(np.interp(x, t, p))


def energy_j(trace: PowerTrace, t0: float, t1: float) -> float:
    """Energy in joules delivered over exactly ``[t0, t1]`` (controller clock).

    Trapezoid rule over the trace's points strictly inside the window, plus the
    power linearly interpolated at ``t0`` and ``t1``, so the result does not
    depend on where the window edges fall between samples (beyond the
    interpolation itself). The window must lie within the trace: no
    extrapolation. ``t0 == t1`` gives 0.0.
    """
    t0 = float(t0)
    t1 = float(t1)
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"energy window must be finite, got [{t0}, {t1}]")
    if t1 < t0:
        raise ValueError(f"energy window ends before it starts: [{t0!r}, {t1!r}]")
    t = trace.t_mono_s
    p = trace.power_w
    if t.size < 2:
        raise ValueError(f"trace has {t.size} point(s); at least 2 are needed to integrate")
    if t0 < t[0] - _EDGE_EPS_S or t1 > t[-1] + _EDGE_EPS_S:
        raise ValueError(
            f"energy window [{t0:.6f}, {t1:.6f}] s is not inside the trace "
            f"[{t[0]:.6f}, {t[-1]:.6f}] s (no extrapolation)"
        )
    t0 = min(max(t0, float(t[0])), float(t[-1]))
    t1 = min(max(t1, float(t[0])), float(t[-1]))
    if t1 == t0:
        return 0.0
    i0 = int(np.searchsorted(t, t0, side="right"))  # first point > t0
    i1 = int(np.searchsorted(t, t1, side="left"))  # first point >= t1
    tt = np.concatenate(([t0], t[i0:i1], [t1]))
    pp = np.concatenate(([_edge_value(t, p, t0)], p[i0:i1], [_edge_value(t, p, t1)]))
    # Explicit trapezoid (np.trapezoid only exists from numpy 2.0).
    return float(np.sum((pp[1:] + pp[:-1]) * np.diff(tt)) / 2.0)


def mean_power_w(trace: PowerTrace, t0: float, t1: float) -> float:
    """Mean power over ``[t0, t1]``: ``energy_j / (t1 - t0)``."""
    if not t1 > t0:
        raise ValueError(f"mean power needs t1 > t0, got [{t0!r}, {t1!r}]")
    return energy_j(trace, t0, t1) / (float(t1) - float(t0))
