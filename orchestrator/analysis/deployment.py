"""Deployment advisor: which measured configuration to deploy a model on, per board.

For each board, model and dtype, the *candidates* are the run's series of that model
(:mod:`orchestrator.analysis.series`): every component or co-execution set at each of its CPU/thread and
frequency settings (and runtime version) that has VALID jobs. Each candidate has

- ``throughput_ips``: images per second, the mean over its VALID repeats (higher is better);
- ``energy_per_image_j``: the *active* energy per image, (mean - idle power) / throughput, the report's
  energy figure (lower is better; empty where the board has no power data or its active power was not
  above idle);
- ``mean_w``: the mean power over the window (the whole board at its supply, or the sum of its rails: the
  ``measures`` column), which a power cap limits.

The **Pareto front** holds the candidates no other candidate beats on both throughput and energy per image
(at least as good on both, better on one). Three recommendations are taken from it:

- **fastest**: the highest throughput (ties: the lower energy per image);
- **most efficient**: the lowest energy per image (ties: the higher throughput);
- **under the power cap** (``--power-cap-w W``): the highest throughput whose mean power is at most W
  (ties: the lower energy per image); none when no candidate stays under it (the lowest draw is named).

Remaining ties go to the first configuration label in alphabetical order, so a report is the same every time.

int8 and float32 are never candidates of one another: the zoo's weights are random, so what quantization does
to accuracy is not measured here, and trading it for speed is not this table's call. Picks of boards whose
power is simulated, or whose userland was emulated, say so (``simulated``, ``emulated``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.analysis.series import SERIES_KEYS

__all__ = ["Deployment", "deployment", "check_power_cap", "pareto_front", "GROUP"]

GROUP = ["board", "soc", "model", "model_label", "dtype"]
CANDIDATE_COLUMNS = GROUP + ["component_label", "freq_setting", "throughput_ips", "energy_per_image_j", "mean_w",
                             "measures", "simulated", "emulated", "jobs", "on_front"]
# (columns, ascending): the order a pick takes its first from; ties end on the label (the same report every time)
FASTEST = (["throughput_ips", "energy_per_image_j", "component_label"], [False, True, True])
THRIFTIEST = (["energy_per_image_j", "throughput_ips", "component_label"], [True, False, True])


@dataclass
class Deployment:
    candidates: pd.DataFrame  # CANDIDATE_COLUMNS, per group sorted by throughput (highest first)
    picks: pd.DataFrame  # one row per group: <pick>_label, <pick>_throughput_ips, <pick>_energy_per_image_j, ...
    power_cap_w: float | None

    @property
    def empty(self) -> bool:
        return self.candidates.empty


def pareto_front(throughput: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Per point: is it on the front of (throughput up, energy down)? Points without an energy figure are
    never on it (unless no point of the set has one: then the fastest are)."""
    thr = np.asarray(throughput, dtype=float)
    e = np.asarray(energy, dtype=float)
    has = np.isfinite(e) & np.isfinite(thr)
    if not has.any():
        finite = np.isfinite(thr)
        return finite & (thr == thr[finite].max()) if finite.any() else np.zeros(len(thr), dtype=bool)
    front = np.zeros(len(thr), dtype=bool)
    for i in np.flatnonzero(has):
        others = has.copy()
        others[i] = False
        beaten = others & (thr >= thr[i]) & (e <= e[i]) & ((thr > thr[i]) | (e < e[i]))
        front[i] = not beaten.any()
    return front


def _candidates(table: pd.DataFrame, energy: pd.DataFrame) -> pd.DataFrame:
    figures = ["mean_w", "energy_per_image_j", "measures", "simulated"]
    t = table[table["throughput_ips"].notna() & (table["throughput_ips"] > 0)]
    if t.empty:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    if energy.empty:
        t = t.assign(mean_w=np.nan, energy_per_image_j=np.nan, measures=None, simulated=False)
    else:
        t = t.merge(energy[SERIES_KEYS + figures], on=SERIES_KEYS, how="left")
    t = t.assign(simulated=t["simulated"].fillna(False).astype(bool),
                 emulated=t["emulated"].fillna("").astype(str) if "emulated" in t.columns else "")
    energy_ok = pd.to_numeric(t["energy_per_image_j"], errors="coerce")
    t["energy_per_image_j"] = energy_ok.where(energy_ok > 0)  # no active power above idle: no figure
    parts = []
    for _, g in t.groupby(GROUP, sort=False, dropna=False):
        g = g.assign(on_front=pareto_front(g["throughput_ips"].to_numpy(), g["energy_per_image_j"].to_numpy()))
        parts.append(g.sort_values(FASTEST[0], ascending=FASTEST[1]))
    return pd.concat(parts, ignore_index=True)[CANDIDATE_COLUMNS]


def _pick(name: str, row: pd.Series | None, note: str = "") -> dict:
    if row is None:
        return {f"{name}_label": None, f"{name}_throughput_ips": np.nan, f"{name}_energy_per_image_j": np.nan,
                f"{name}_mean_w": np.nan, f"{name}_note": note}
    return {f"{name}_label": row["component_label"], f"{name}_throughput_ips": row["throughput_ips"],
            f"{name}_energy_per_image_j": row["energy_per_image_j"], f"{name}_mean_w": row["mean_w"],
            f"{name}_note": note}


def _first(frame: pd.DataFrame, order: tuple[list[str], list[bool]]) -> pd.Series:
    return frame.sort_values(order[0], ascending=order[1]).iloc[0]


def _picks(g: pd.DataFrame, power_cap_w: float | None) -> dict:
    out: dict = dict(zip(GROUP, g.iloc[0][GROUP]))
    out.update(candidates=len(g), front=int(g["on_front"].sum()), simulated=bool(g["simulated"].any()),
               emulated=next((e for e in g["emulated"] if e), ""))
    out.update(_pick("fastest", _first(g, FASTEST)))
    with_energy = g[g["energy_per_image_j"].notna()]
    if with_energy.empty:
        out.update(_pick("efficient", None, "no energy figure (no power data, or active power not above idle)"))
    else:
        out.update(_pick("efficient", _first(with_energy, THRIFTIEST)))
    if power_cap_w is None:
        out.update(_pick("capped", None, "no power cap given (--power-cap-w)"))
    else:
        drawn = g[g["mean_w"].notna()]
        under = drawn[drawn["mean_w"] <= power_cap_w]
        if drawn.empty:
            out.update(_pick("capped", None, "no power figure"))
        elif under.empty:
            low = _first(drawn, (["mean_w", "component_label"], [True, True]))
            out.update(_pick("capped", None, f"none within {power_cap_w:g} W (lowest draw: "
                                             f"{low['component_label']} at {low['mean_w']:.3g} W)"))
        else:
            out.update(_pick("capped", _first(under, FASTEST)))
    return out


def check_power_cap(power_cap_w: float | None) -> float | None:
    """``power_cap_w`` if it is none or a positive, finite number of watts; else ``ValueError``."""
    if power_cap_w is not None and not (math.isfinite(power_cap_w) and power_cap_w > 0):
        raise ValueError(f"{power_cap_w} W: a power cap is a positive number of watts")
    return power_cap_w


def deployment(table: pd.DataFrame, energy_summary: pd.DataFrame, power_cap_w: float | None = None) -> Deployment:
    """The candidates with their Pareto front and the three picks per board, model and dtype.

    ``table``: the run's throughput per series (``RunAnalysis.table``); ``energy_summary``: its energy per
    series (``RunAnalysis.energy_summary``); both keyed by :data:`SERIES_KEYS`."""
    check_power_cap(power_cap_w)
    candidates = _candidates(table, energy_summary)
    if candidates.empty:
        return Deployment(candidates, pd.DataFrame(columns=GROUP), power_cap_w)
    picks = pd.DataFrame([_picks(g, power_cap_w) for _, g in candidates.groupby(GROUP, sort=False, dropna=False)])
    return Deployment(candidates, picks, power_cap_w)
