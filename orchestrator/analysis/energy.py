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

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestrator.analysis.tables import read_columns, table_files
from orchestrator.errors import StoreError
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
    lo = np.maximum(a, np.repeat(np.asarray(t0_s, dtype=np.float64), counts)[:-1])
    hi = np.minimum(b, np.repeat(np.asarray(t1_s, dtype=np.float64), counts)[:-1])
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
    energy[counts < 2] = np.nan
    return energy, tmin, tmax


def _dict_indices(table: pa.Table, name: str, default: str) -> tuple[np.ndarray, list]:
    col = table.column(name)
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    values = col.dictionary.to_pylist()
    idx = col.indices.fill_null(len(values)).to_numpy(zero_copy_only=False).astype(np.int64)
    return idx, [*values, default]


def _group_energy(table: pa.Table, windows: pd.DataFrame) -> pd.DataFrame:
    """Per (job, source, rail) of one Arrow table of power samples."""
    table = table.unify_dictionaries() if any(pa.types.is_dictionary(f.type) for f in table.schema) else table
    ji, jobs = _dict_indices(table, "job_id", "")
    si, srcs = _dict_indices(table, "source", "meter")
    ri, rails = _dict_indices(table, "rail", "board")
    ns, nr = len(srcs), len(rails)
    combined = (ji * ns + si) * nr + ri
    present = np.bincount(combined, minlength=len(jobs) * ns * nr) > 0
    uniq = np.flatnonzero(present)
    remap = np.cumsum(present) - 1
    codes = remap[combined]
    srcs = [s if s is not None else "meter" for s in srcs]
    rails = [r if r is not None else "board" for r in rails]
    job_of_group = uniq // (ns * nr)
    groups = pd.DataFrame({
        "job_id": np.asarray(jobs, dtype=object)[job_of_group],
        "source": np.asarray(srcs, dtype=object)[(uniq // nr) % ns],
        "rail": np.asarray(rails, dtype=object)[uniq % nr],
    })
    # windows by job through the file's (small) job dictionary, not by merging per group
    pos = windows.index.get_indexer(np.asarray(jobs, dtype=object))[job_of_group]
    t0 = np.where(pos >= 0, windows["t0_s"].to_numpy()[pos], np.nan)
    t1 = np.where(pos >= 0, windows["t1_s"].to_numpy()[pos], np.nan)
    groups["t0_s"] = t0
    groups["t1_s"] = t1
    t = table.column("t_mono_s").to_numpy()
    p = table.column("power_w").to_numpy()
    energy, tmin, tmax = window_energy(t, p, codes, t0, t1, len(groups))
    groups["energy_j"] = energy
    groups["t_first_s"] = tmin
    groups["t_last_s"] = tmax
    return groups


def integrate_windows(power_tables: Iterable[pa.Table], windows: pd.DataFrame) -> pd.DataFrame:
    """Mean power per (job, source, rail) over each job's window.

    ``windows``: job_id, t0_s, t1_s. Returns job_id, source, rail, energy_j,
    mean_w (empty when the samples do not cover the window).
    """
    windows = _window_index(windows)
    return _combine([_group_energy(t, windows) for t in power_tables if t.num_rows])


def _window_index(windows: pd.DataFrame) -> pd.DataFrame:
    return windows.set_index(pd.Index(windows["job_id"].to_numpy(dtype=object)))[["t0_s", "t1_s"]]


def _combine(parts: list[pd.DataFrame]) -> pd.DataFrame:
    cols = ["job_id", "source", "rail", "energy_j", "mean_w", "covered"]
    if not parts:
        return pd.DataFrame(columns=cols)
    g = pd.concat(parts, ignore_index=True)
    g = g[g["t0_s"].notna()]
    if g.duplicated(["job_id", "source", "rail"]).any():  # a job's samples spread over several files
        g = (g.groupby(["job_id", "source", "rail"], sort=False)
             .agg(energy_j=("energy_j", "sum"), t_first_s=("t_first_s", "min"), t_last_s=("t_last_s", "max"),
                  t0_s=("t0_s", "first"), t1_s=("t1_s", "first"))
             .reset_index())
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
    g = rails.groupby(["job_id", "source"], sort=False)
    per_source = g.agg(mean_w=("mean_w", "sum"), idle_w=("idle_w", "sum"), energy_j=("energy_j", "sum"),
                       rails=("rail", "size"), n_mean=("mean_w", "count"), n_idle=("idle_w", "count"),
                       n_energy=("energy_j", "count")).reset_index()
    # a sum over rails is only a figure when every rail has one
    for col, n in (("mean_w", "n_mean"), ("idle_w", "n_idle"), ("energy_j", "n_energy")):
        per_source[col] = per_source[col].where(per_source[n] == per_source["rails"])
    per_source = per_source.drop(columns=["n_mean", "n_idle", "n_energy"])
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
    notes = np.select(
        [out["mean_w"].isna(), out["idle_w"].isna(), ~(out["active_w"] > 0)],
        ["no power samples covering the window", IDLE_NOT_MEASURED, "active power not above idle"], default="")
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


def iter_power(run: RunDir):
    """The power samples file by file, strings kept dictionary-encoded as Parquet stores them."""
    for path in table_files(run, "power"):
        yield read_power(path)


def read_power(path) -> pa.Table:
    """One power file: job_id/source/rail dictionary-encoded (rows written before source/rail existed: nulls)."""
    cols = ["job_id", "source", "rail", "t_mono_s", "power_w"]
    try:
        have = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in cols if c in have],
                              read_dictionary=[c for c in ("job_id", "source", "rail") if c in have])
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise StoreError(f"{path}: corrupt Parquet file ({str(exc).splitlines()[0]})") from None
    for c in cols:
        if c not in have:
            if c in ("t_mono_s", "power_w", "job_id"):
                raise StoreError(f"{path}: no column {c!r}; not a power table")
            table = table.append_column(c, pa.nulls(table.num_rows, pa.string()))
    return table


def run_energy(run: RunDir, results: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``job_energy`` for a stored run, reading only the columns it needs."""
    if results is None:
        results = read_columns(run, "results", RESULT_COLUMNS)
    windows = _window_index(windows_of(results))
    files = table_files(run, "power")
    # Parquet decoding and the numpy passes release the GIL: files in parallel on a thread pool
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        parts = [p for p in pool.map(lambda f: _group_energy(read_power(f), windows), files) if len(p)]
    power = _combine(parts)
    idle = read_columns(run, "idle", ["board", "source", "rail", "mean_power_w"])
    return job_energy(results, power, idle)
