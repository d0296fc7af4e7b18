"""Active power, energy per image and images per joule, per job.

Method (DESIGN §3 "Energy")
---------------------------
- The measurement window of a job is ``[window_start_mono_ns, window_end_mono_ns]``
  of its results row, on the board's clock; power samples are stored on the
  same clock (``power.t_mono_s``).
- Per (job, source, rail) the energy over exactly the window is the trapezoid
  integral of the samples, with the power linearly interpolated at the window
  edges (the rule of ``orchestrator.meters.energy.energy_j``); a window the
  samples do not cover is not extrapolated: its power stays empty.
  Mean power = energy / window duration.
- Source: a supply meter (``source == "meter"``, rail ``board``) measures the
  whole board and takes precedence; otherwise the on-board sensors
  (``source == "sensor"``), whose rails are summed.
- Active power = mean power - idle power of the same board measured in the
  same run, from the same source (for rails: the sum of the rails' idle). No
  idle row -> "idle not measured" and no active power (never a guess).
- Energy per image = active power / throughput; images per joule = throughput
  / active power.
- ``clock_uncertainty_ns`` (from the results row) bounds how far the window may
  be shifted against the meter's samples; ``window_shift_rel`` is that
  uncertainty relative to the window length.

Rows written before the power table carried ``source``/``rail`` are read as
the supply meter's ``board`` rail (the only writer at that time).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.analysis.tables import iter_files, read_columns
from orchestrator.results.store import RunDir

__all__ = ["window_energy", "integrate_windows", "job_energy", "run_energy", "EDGE_EPS_S", "RESULT_COLUMNS"]

EDGE_EPS_S = 1e-9
IDLE_NOT_MEASURED = "idle not measured"

RESULT_COLUMNS = [
    "job_id", "board", "soc", "component", "component_class", "model", "model_display", "dtype",
    "throughput_ips", "verdict", "window_start_mono_ns", "window_end_mono_ns", "duration_s",
    "meter_kind", "meter_measures", "clock_uncertainty_ns",
]


def window_energy(t_s: np.ndarray, p_w: np.ndarray, codes: np.ndarray, t0_s: np.ndarray, t1_s: np.ndarray,
                  ngroups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy over each group's window, vectorized.

    ``codes[i]`` is the group of sample ``i``; ``t0_s[g], t1_s[g]`` the window
    of group ``g``. Returns (energy_j, first sample time, last sample time)
    per group (NaN energy for groups without two samples).
    """
    t_s = np.asarray(t_s, dtype=np.float64)
    p_w = np.asarray(p_w, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    n = t_s.size
    energy = np.zeros(ngroups)
    tmin = np.full(ngroups, np.nan)
    tmax = np.full(ngroups, np.nan)
    if n == 0:
        return np.full(ngroups, np.nan), tmin, tmax
    # sort by (group, time) unless already sorted
    same_next = codes[1:] == codes[:-1]
    if not (np.all(codes[1:] >= codes[:-1]) and np.all(t_s[1:][same_next] >= t_s[:-1][same_next])):
        order = np.lexsort((t_s, codes))
        t_s, p_w, codes = t_s[order], p_w[order], codes[order]
        same_next = codes[1:] == codes[:-1]
    counts = np.bincount(codes, minlength=ngroups)
    starts = np.flatnonzero(np.r_[True, ~same_next])
    ends = np.r_[starts[1:], n] - 1
    gs = codes[starts]
    tmin[gs] = t_s[starts]
    tmax[gs] = t_s[ends]
    a, b = t_s[:-1], t_s[1:]
    pa_, pb_ = p_w[:-1], p_w[1:]
    g = codes[:-1]
    w0, w1 = t0_s[g], t1_s[g]
    lo = np.maximum(a, w0)
    hi = np.minimum(b, w1)
    ok = same_next & (hi > lo) & (b > a)
    a, b, pa_, pb_, lo, hi, g = a[ok], b[ok], pa_[ok], pb_[ok], lo[ok], hi[ok], g[ok]
    slope = (pb_ - pa_) / (b - a)
    p_lo = pa_ + slope * (lo - a)
    p_hi = pa_ + slope * (hi - a)
    energy += np.bincount(g, weights=(p_lo + p_hi) * (hi - lo) / 2.0, minlength=ngroups)
    energy[counts < 2] = np.nan
    return energy, tmin, tmax


def _group_energy(table: pa.Table, windows: pd.DataFrame) -> pd.DataFrame:
    """Per (job, source, rail) of one Arrow table of power samples."""
    job = pc.dictionary_encode(table.column("job_id")).combine_chunks()
    src = pc.dictionary_encode(pc.fill_null(table.column("source"), "meter")).combine_chunks()
    rail = pc.dictionary_encode(pc.fill_null(table.column("rail"), "board")).combine_chunks()
    ji = job.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    si = src.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ri = rail.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ns, nr = len(src.dictionary), len(rail.dictionary)
    combined = (ji * ns + si) * nr + ri
    uniq, codes = np.unique(combined, return_inverse=True)
    job_names = np.asarray(job.dictionary.to_pylist(), dtype=object)
    groups = pd.DataFrame({
        "job_id": job_names[uniq // (ns * nr)],
        "source": np.asarray(src.dictionary.to_pylist(), dtype=object)[(uniq // nr) % ns],
        "rail": np.asarray(rail.dictionary.to_pylist(), dtype=object)[uniq % nr],
    })
    win = groups[["job_id"]].merge(windows, on="job_id", how="left")
    t0 = win["t0_s"].to_numpy(dtype=np.float64, na_value=np.nan)
    t1 = win["t1_s"].to_numpy(dtype=np.float64, na_value=np.nan)
    t = table.column("t_mono_s").to_numpy()
    p = table.column("power_w").to_numpy()
    energy, tmin, tmax = window_energy(t, p, codes.reshape(-1), t0, t1, len(groups))
    groups["energy_j"] = energy
    groups["t_first_s"] = tmin
    groups["t_last_s"] = tmax
    return groups


def integrate_windows(power_tables: Iterable[pa.Table], windows: pd.DataFrame) -> pd.DataFrame:
    """Mean power per (job, source, rail) over each job's window.

    ``windows``: job_id, t0_s, t1_s. Returns job_id, source, rail, energy_j,
    mean_w (empty when the samples do not cover the window).
    """
    parts = [_group_energy(t, windows) for t in power_tables if t.num_rows]
    cols = ["job_id", "source", "rail", "energy_j", "mean_w", "covered"]
    if not parts:
        return pd.DataFrame(columns=cols)
    g = pd.concat(parts, ignore_index=True)
    g = (g.groupby(["job_id", "source", "rail"], sort=False)
         .agg(energy_j=("energy_j", "sum"), t_first_s=("t_first_s", "min"), t_last_s=("t_last_s", "max"))
         .reset_index())
    g = g.merge(windows, on="job_id", how="inner")
    covered = (g["t_first_s"] <= g["t0_s"] + EDGE_EPS_S) & (g["t_last_s"] >= g["t1_s"] - EDGE_EPS_S) & (
        g["t1_s"] > g["t0_s"])
    g["covered"] = covered
    g["mean_w"] = np.where(covered, g["energy_j"] / (g["t1_s"] - g["t0_s"]), np.nan)
    g.loc[~covered, "energy_j"] = np.nan
    return g[cols]


def job_energy(results: pd.DataFrame, rail_power: pd.DataFrame, idle: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-job energy figures and the per-rail breakdown (see the module doc)."""
    idle = idle.copy()
    idle["source"] = idle["source"].fillna("meter")
    idle["rail"] = idle["rail"].fillna("board")
    idle_rail = idle.groupby(["board", "source", "rail"], sort=False)["mean_power_w"].mean().rename("idle_w").reset_index()

    rails = rail_power.merge(results[["job_id", "board"]], on="job_id", how="inner")
    rails = rails.merge(idle_rail, on=["board", "source", "rail"], how="left")
    rails["active_w"] = rails["mean_w"] - rails["idle_w"]

    # one source per job: the supply meter if it has a figure, else the sensors
    per_source = (rails.groupby(["job_id", "source"], sort=False)
                  .agg(mean_w=("mean_w", lambda s: s.sum(min_count=len(s))),
                       idle_w=("idle_w", lambda s: s.sum(min_count=len(s))),
                       rails=("rail", "size"), energy_j=("energy_j", lambda s: s.sum(min_count=len(s))))
                  .reset_index())
    per_source["rank"] = np.where(per_source["source"] == "meter", 0, 1)
    per_source = per_source.sort_values(["job_id", "rank"]).drop_duplicates("job_id").drop(columns="rank")

    out = results.merge(per_source, on="job_id", how="left")
    out["measures"] = np.select(
        [out["source"] == "meter", out["source"] == "sensor"], ["board_supply", "rails"], default=None)
    out["active_w"] = out["mean_w"] - out["idle_w"]
    thr = out["throughput_ips"].astype(float)
    active = out["active_w"].astype(float)
    positive = active > 0
    out["energy_per_image_j"] = np.where(positive, active / thr, np.nan)
    out["images_per_j"] = np.where(positive, thr / active, np.nan)
    out["total_energy_per_image_j"] = out["mean_w"] / thr
    unc_s = pd.to_numeric(out["clock_uncertainty_ns"], errors="coerce") / 1e9
    out["clock_uncertainty_ms"] = unc_s * 1e3
    out["window_shift_rel"] = unc_s / pd.to_numeric(out["duration_s"], errors="coerce")
    notes = []
    for has_power, idle_w, act in zip(out["mean_w"].notna(), out["idle_w"].notna(), out["active_w"]):
        if not has_power:
            notes.append("no power samples covering the window")
        elif not idle_w:
            notes.append(IDLE_NOT_MEASURED)
        elif not act > 0:
            notes.append("active power not above idle")
        else:
            notes.append("")
    out["energy_note"] = notes
    rails = rails[rails["source"] == "sensor"][["job_id", "rail", "mean_w", "idle_w", "active_w"]]
    return out, rails.reset_index(drop=True)


def windows_of(results: pd.DataFrame) -> pd.DataFrame:
    w = results[["job_id", "window_start_mono_ns", "window_end_mono_ns"]].dropna()
    return pd.DataFrame({
        "job_id": w["job_id"].to_numpy(),
        "t0_s": w["window_start_mono_ns"].to_numpy(dtype=np.float64) / 1e9,
        "t1_s": w["window_end_mono_ns"].to_numpy(dtype=np.float64) / 1e9,
    })


def run_energy(run: RunDir, results: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``job_energy`` for a stored run, reading only the columns it needs."""
    if results is None:
        results = read_columns(run, "results", RESULT_COLUMNS)
    power = integrate_windows(
        iter_files(run, "power", ["job_id", "source", "rail", "t_mono_s", "power_w"]), windows_of(results))
    idle = read_columns(run, "idle", ["board", "source", "rail", "mean_power_w"])
    return job_energy(results, power, idle)
