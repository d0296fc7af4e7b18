"""Rail power of a virtual board, from its utilisation and operating points.

Per CPU cluster: ``P = idle_w * (V/Vmax)^2 + busy_cores * per_core_w * (f/fmax) * (V/Vmax)^2``
where the rail voltage ``V`` rises linearly with frequency between the
lowest and highest OPP (a DVFS table in one line). The GPU rail only idles
(no GPU work runs on a virtual board); the memory rail has an idle part plus a
part proportional to the total CPU activity. The figures are of the order
published for these SoCs (A15 at 2 GHz ~1.5 W per busy core, A7 ~0.15 W), not
calibrated measurements: tests check that power follows activity, not values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.virtual.sysfs import SocLayout


@dataclass(frozen=True)
class ClusterPower:
    idle_w: float  # at the top OPP, no core busy
    per_core_w: float  # one busy core at the top OPP
    v_min: float
    v_max: float


@dataclass(frozen=True)
class SocPower:
    clusters: Mapping[str, ClusterPower]
    gpu: ClusterPower  # idle_w only is used
    mem_idle_w: float
    mem_per_busy_core_w: float
    mem_v: float
    rest_of_board_w: float  # regulators, USB, Ethernet, fan: what a supply-side meter also sees
    ambient_c: float = 38.0
    c_per_w: float = 7.0  # steady-state heating of a zone per watt of the rails it sees
    tau_s: float = 2.0
    throttled_c: float = 95.0


POWER: dict[str, SocPower] = {
    "odroid_xu3": SocPower(
        clusters={"a7": ClusterPower(0.04, 0.15, 0.90, 1.2375),
                  "a15": ClusterPower(0.30, 1.50, 0.90, 1.3625)},
        gpu=ClusterPower(0.10, 0.0, 0.80, 1.15),
        mem_idle_w=0.15, mem_per_busy_core_w=0.08, mem_v=1.20, rest_of_board_w=1.8,
    ),
    "hikey970": SocPower(
        clusters={"a53": ClusterPower(0.05, 0.25, 0.70, 1.05),
                  "a73": ClusterPower(0.20, 1.30, 0.70, 1.10)},
        gpu=ClusterPower(0.15, 0.0, 0.70, 1.00),
        mem_idle_w=0.20, mem_per_busy_core_w=0.10, mem_v=1.10, rest_of_board_w=2.5,
    ),
}


def rail_voltage(spec: ClusterPower, f: int, f_min: int, f_max: int) -> float:
    if f_max <= f_min:
        return spec.v_max
    x = min(max((f - f_min) / (f_max - f_min), 0.0), 1.0)
    return spec.v_min + x * (spec.v_max - spec.v_min)


def cluster_power_w(spec: ClusterPower, f: int, f_min: int, f_max: int, busy_cores: float) -> float:
    v_scale = (rail_voltage(spec, f, f_min, f_max) / spec.v_max) ** 2
    return spec.idle_w * v_scale + busy_cores * spec.per_core_w * (f / f_max) * v_scale


@dataclass(frozen=True)
class RailReading:
    power_w: float
    voltage_v: float

    @property
    def current_a(self) -> float:
        return self.power_w / self.voltage_v if self.voltage_v else 0.0


def rail_readings(layout: SocLayout, model: SocPower, freqs: Mapping[str, int],
                  busy: Mapping[str, float]) -> dict[str, RailReading]:
    """Every rail's power: one per cluster (by name), ``gpu`` and ``mem``.

    ``freqs`` holds the current frequency per cluster name (kHz) and for
    ``gpu`` (Hz); ``busy`` the utilisation per cluster in busy cores.
    """
    out: dict[str, RailReading] = {}
    total_busy = 0.0
    for c in layout.clusters:
        spec = model.clusters[c.name]
        u = min(max(busy.get(c.name, 0.0), 0.0), float(len(c.cpus)))
        total_busy += u
        f = freqs[c.name]
        p = cluster_power_w(spec, f, c.opps_khz[0], c.opps_khz[-1], u)
        out[c.name] = RailReading(p, rail_voltage(spec, f, c.opps_khz[0], c.opps_khz[-1]))
    d = layout.devfreq
    g = freqs["gpu"]
    out["gpu"] = RailReading(cluster_power_w(model.gpu, g, d.opps_hz[0], d.opps_hz[-1], 0.0),
                             rail_voltage(model.gpu, g, d.opps_hz[0], d.opps_hz[-1]))
    out["mem"] = RailReading(model.mem_idle_w + model.mem_per_busy_core_w * total_busy, model.mem_v)
    return out


def relax(temp_c: float, target_c: float, dt_s: float, tau_s: float) -> float:
    """First-order thermal response over ``dt_s``."""
    return target_c + (temp_c - target_c) * math.exp(-dt_s / tau_s)
