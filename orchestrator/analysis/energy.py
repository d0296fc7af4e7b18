"""Active power, energy per image and images per joule, per job.

Method (DESIGN §3 "Energy"); the results row of a job (``orchestrator.board_runner``)
and the report both compute their figures here, from the same stored samples
with the same integral, so a figure means the same in Parquet and in a report.

- The measurement window of a job is ``[window_start_mono_ns, window_end_mono_ns]``
  of its results row, on the board's clock; power samples are stored on the
  same clock (``power.t_mono_s``).
- Per (job, source, rail) the energy over exactly the window is
  :func:`orchestrator.meters.energy.window_energy` of the samples (trapezoid,
  edges interpolated). A supply meter's samples must reach both edges; an
  on-board sensor's value may be held for one conversion period (it yields one
  sample per conversion). A window the samples do not cover is never
  extrapolated: its power stays empty and the note says by how much it was
  missed (``window not covered (meter ended 3.1 ms early)``).
- Source: a supply meter (``source == "meter"``, rail ``board``) measures the
  whole board and takes precedence; otherwise the on-board sensors
  (``source == "sensor"``), whose rails are summed.
- Idle power is measured per board and source at the start of its share of
  the run, after a settle period (``phase == "start"``), and again at its end
  (``phase == "end"``). Active power = mean power - the start idle power of the
  same board and source (for rails: the sum of the rails' idle). No idle row ->
  "idle not measured" and no active power (never a guess). An end idle that
  differs from the start by more than ``IDLE_DRIFT_LIMIT`` is flagged with the
  board's idle power (``idle_drift_rel`` per job).
- ``energy_j``: total energy over the window. ``energy_per_image_j``: ACTIVE
  energy per image (frame) = active power / throughput (throughput counts
  frames, also for external backends that run batches); ``images_per_j`` is
  its reciprocal; ``total_energy_per_image_j`` = mean power / throughput.
- ``clock_uncertainty_ns`` (from the results row) bounds how far the window may
  be shifted against the meter's samples; ``window_shift_rel`` is that
  uncertainty relative to the window length.
- ``power_simulated`` (results row): the power came from a model (a virtual
  meter, the simulated sensors of an emulated board), never from a real meter.

Rows written before the power table carried ``source``/``rail`` are read as
the supply meter's ``board`` rail (the only writer at that time); idle rows
without ``phase`` as start idle.
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

from orchestrator.analysis.tables import read_columns
from orchestrator.errors import StoreError
from orchestrator.meters.energy import covered as covered_by
from orchestrator.meters.energy import window_energy
from orchestrator.results.store import RunDir

__all__ = ["window_energy", "integrate_windows", "job_energy", "run_energy", "RESULT_COLUMNS", "IDLE_DRIFT_LIMIT"]

IDLE_NOT_MEASURED = "idle not measured"
EDGE_EPS_S = 1e-9
IDLE_DRIFT_LIMIT = 0.05  # end-of-share idle power differing more than this from the start is noted

RESULT_COLUMNS = [
    "job_id", "board", "soc", "component", "component_class", "model", "model_display", "dtype",
    "throughput_ips", "verdict", "window_start_mono_ns", "window_end_mono_ns", "duration_s",
    "meter_kind", "meter_measures", "clock_uncertainty_ns", "power_simulated",
]


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
    # a job without a window (none in the results: -1) gets NaN; with no window at all, nothing to index
    t0_of, t1_of = (np.append(windows[c].to_numpy(dtype=np.float64), np.nan) for c in ("t0_s", "t1_s"))
    t0, t1 = t0_of[pos], t1_of[pos]
    groups["t0_s"] = t0
    groups["t1_s"] = t1
    t = table.column("t_mono_s").to_numpy()
    p = table.column("power_w").to_numpy()
    energy, tmin, tmax = window_energy(t, p, codes, t0, t1, len(groups))
    groups["energy_j"] = energy
    groups["t_first_s"] = tmin
    groups["t_last_s"] = tmax
    groups["samples"] = np.bincount(codes, minlength=len(groups))
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
    cols = ["job_id", "source", "rail", "energy_j", "mean_w", "covered", "samples", "missed_start_s",
            "missed_end_s"]
    if not parts:
        return pd.DataFrame(columns=cols)
    g = pd.concat(parts, ignore_index=True)
    g = g[g["t0_s"].notna()]
    if g.duplicated(["job_id", "source", "rail"]).any():  # a job's samples spread over several files
        g = (g.groupby(["job_id", "source", "rail"], sort=False)
             .agg(energy_j=("energy_j", "sum"), t_first_s=("t_first_s", "min"), t_last_s=("t_last_s", "max"),
                  t0_s=("t0_s", "first"), t1_s=("t1_s", "first"), samples=("samples", "sum"))
             .reset_index())
    hold = _hold_s(g)
    g["covered"] = covered_by(g["t_first_s"], g["t_last_s"], g["t0_s"], g["t1_s"], hold)
    g["mean_w"] = np.where(g["covered"], g["energy_j"] / (g["t1_s"] - g["t0_s"]), np.nan)
    g.loc[~g["covered"], "energy_j"] = np.nan
    # by how much an edge was missed beyond what may be held (0: that edge is covered)
    g["missed_start_s"] = np.clip(g["t_first_s"] - g["t0_s"] - hold - EDGE_EPS_S, 0.0, None)
    g["missed_end_s"] = np.clip(g["t1_s"] - g["t_last_s"] - hold - EDGE_EPS_S, 0.0, None)
    return g[cols]


def _hold_s(g: pd.DataFrame) -> np.ndarray:
    """How long a group's first/last value may be held at the window edges: nothing for a supply meter;
    for an on-board sensor one conversion period (the mean spacing of its samples)."""
    spacing = (g["t_last_s"] - g["t_first_s"]) / np.maximum(g["samples"].to_numpy(dtype=float) - 1, 1)
    return np.where(g["source"].to_numpy() == "sensor", spacing.fillna(0.0).to_numpy(), 0.0)


def coverage_note(source: str, missed_start_s: float, missed_end_s: float) -> str:
    """Why a window has no energy: by how much the samples missed which edge."""
    who = "meter" if source == "meter" else "sensors"
    parts = []
    if missed_start_s > 0:
        parts.append(f"{who} began {missed_start_s * 1e3:.1f} ms late")
    if missed_end_s > 0:
        parts.append(f"{who} ended {missed_end_s * 1e3:.1f} ms early")
    return f"window not covered ({', '.join(parts) or 'no samples'})"


def idle_by_phase(idle: pd.DataFrame) -> pd.DataFrame:
    """Idle power per (board, source, rail): ``idle_w`` at the start of the board's share, ``idle_end_w`` at
    its end (NaN where not measured)."""
    idle = idle.copy()
    idle["source"] = idle["source"].fillna("meter")
    idle["rail"] = idle["rail"].fillna("board")
    phase = idle["phase"].fillna("start") if "phase" in idle else pd.Series("start", index=idle.index)
    keys = ["board", "source", "rail"]
    start = idle[phase == "start"].groupby(keys, sort=False)["mean_power_w"].mean().rename("idle_w")
    end = idle[phase == "end"].groupby(keys, sort=False)["mean_power_w"].mean().rename("idle_end_w")
    both = pd.concat([start, end], axis=1)
    both.index.names = keys
    return both.reset_index() if len(both) else pd.DataFrame(columns=[*keys, "idle_w", "idle_end_w"])


def _one_source_per_job(rails: pd.DataFrame) -> pd.DataFrame:
    """Per job, the figures of one source: the supply meter if it has samples, else the sensors (their rails
    summed)."""
    if not rails["job_id"].duplicated().any():  # one rail per job (a supply meter's board): nothing to sum
        cols = ["job_id", "source", "mean_w", "idle_w", "idle_end_w", "energy_j", "samples", "missed_start_s",
                "missed_end_s"]
        return rails[cols].assign(rails=1)
    g = rails.groupby(["job_id", "source"], sort=False)
    per_source = g.agg(mean_w=("mean_w", "sum"), idle_w=("idle_w", "sum"), idle_end_w=("idle_end_w", "sum"),
                       energy_j=("energy_j", "sum"), samples=("samples", "sum"),
                       missed_start_s=("missed_start_s", "max"), missed_end_s=("missed_end_s", "max"),
                       rails=("rail", "size"), n_mean=("mean_w", "count"), n_idle=("idle_w", "count"),
                       n_idle_end=("idle_end_w", "count"), n_energy=("energy_j", "count")).reset_index()
    # a sum over rails is only a figure when every rail has one
    for col, n in (("mean_w", "n_mean"), ("idle_w", "n_idle"), ("idle_end_w", "n_idle_end"),
                   ("energy_j", "n_energy")):
        per_source[col] = per_source[col].where(per_source[n] == per_source["rails"])
    per_source = per_source.drop(columns=["n_mean", "n_idle", "n_idle_end", "n_energy"])
    per_source["rank"] = np.where(per_source["source"] == "meter", 0, 1)
    per_source = per_source.sort_values(["job_id", "rank"]).drop_duplicates("job_id").drop(columns="rank")
    return per_source


def job_energy(results: pd.DataFrame, rail_power: pd.DataFrame, idle: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-job energy figures and the per-rail breakdown (see the module doc)."""
    rail_power = rail_power.copy()
    for col, default in (("samples", np.nan), ("missed_start_s", 0.0), ("missed_end_s", 0.0)):
        if col not in rail_power:
            rail_power[col] = default
    rails = rail_power.merge(results[["job_id", "board"]], on="job_id", how="inner")
    rails = rails.merge(idle_by_phase(idle), on=["board", "source", "rail"], how="left")
    rails["active_w"] = rails["mean_w"] - rails["idle_w"]

    per_source = _one_source_per_job(rails)
    out = results.merge(per_source, on="job_id", how="left")
    out["measures"] = np.select(
        [out["source"] == "meter", out["source"] == "sensor"], ["board_supply", "rails"], default=None)
    out["active_w"] = out["mean_w"] - out["idle_w"]
    thr = pd.to_numeric(out["throughput_ips"], errors="coerce").astype(float)
    active = out["active_w"].astype(float)
    positive = (active > 0) & (thr > 0)
    out["energy_per_image_j"] = np.where(positive, active / thr, np.nan)
    out["images_per_j"] = 1.0 / out["energy_per_image_j"]
    out["total_energy_per_image_j"] = out["mean_w"] / thr
    out["idle_drift_rel"] = (out["idle_end_w"] - out["idle_w"]) / out["idle_w"]
    unc_s = pd.to_numeric(out["clock_uncertainty_ns"], errors="coerce") / 1e9
    out["clock_uncertainty_ms"] = unc_s * 1e3
    out["window_shift_rel"] = unc_s / pd.to_numeric(out["duration_s"], errors="coerce")
    out["energy_note"] = _notes(out)
    rails = rails[rails["source"] == "sensor"][["job_id", "rail", "mean_w", "idle_w", "active_w"]]
    return out, rails.reset_index(drop=True)


def one_job_energy(t0_s: float, t1_s: float, throughput_ips: float | None, samples: pd.DataFrame,
                   idle_w: dict[tuple[str, str], float]) -> dict[str, object]:
    """What :func:`job_energy` gives one job, as a dict: the same integral (:func:`window_energy`), the
    same coverage, source and idle rules and the same notes, without the table machinery. A results row is
    written as each job ends; a table pass costs ~40 ms of pandas per job (the controller's largest cost
    per job on a 64-board farm), this ~2 ms. tests/analysis/test_one_job_energy.py holds both to the
    same figures over the cases the rules distinguish.

    ``samples``: the job's power samples (source, rail, t_mono_s, power_w); ``idle_w``: the start idle power
    of the job's board per (source, rail) (:func:`idle_by_phase`)."""
    t = samples["t_mono_s"].to_numpy(dtype=np.float64)
    p = samples["power_w"].to_numpy(dtype=np.float64)
    groups = []  # per (source, rail): the row of integrate_windows' table, merged with its idle power
    for (source, rail), idx in samples.groupby(["source", "rail"], sort=False).indices.items():
        energy, tmin, tmax = (float(v[0]) for v in window_energy(t[idx], p[idx], np.zeros(len(idx)),
                                                                 [t0_s], [t1_s], 1))
        spacing = (tmax - tmin) / max(len(idx) - 1, 1)
        hold = (0.0 if np.isnan(spacing) else spacing) if source == "sensor" else 0.0
        ok = bool(covered_by(tmin, tmax, t0_s, t1_s, hold))
        groups.append({"source": source, "samples": len(idx), "idle_w": idle_w.get((source, rail), np.nan),
                       "energy_j": energy if ok else np.nan, "mean_w": energy / (t1_s - t0_s) if ok else np.nan,
                       "missed_start_s": max(tmin - t0_s - hold - EDGE_EPS_S, 0.0),
                       "missed_end_s": max(t1_s - tmax - hold - EDGE_EPS_S, 0.0)})
    out: dict[str, object] = {"source": None, "mean_w": np.nan, "energy_j": np.nan, "idle_w": np.nan}
    if groups:  # the supply meter if it has samples, else the sensors (a sum only when every rail has one)
        source = "meter" if any(g["source"] == "meter" for g in groups) else groups[0]["source"]
        mine = [g for g in groups if g["source"] == source]
        out = {"source": source, **{c: float(sum(g[c] for g in mine)) for c in ("mean_w", "energy_j", "idle_w")},
               "missed_start_s": max(g["missed_start_s"] for g in mine),
               "missed_end_s": max(g["missed_end_s"] for g in mine)}
    mean, idle = out["mean_w"], out["idle_w"]
    thr = float(throughput_ips) if throughput_ips is not None else np.nan
    active = mean - idle
    per_image = active / thr if active > 0 and thr > 0 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        total_per_image = float(np.float64(mean) / np.float64(thr))
    if out["source"] is None:
        note = "no power samples"
    elif np.isnan(mean):
        note = coverage_note(out["source"], out["missed_start_s"], out["missed_end_s"])
    elif np.isnan(idle):
        note = IDLE_NOT_MEASURED
    elif not active > 0:
        note = "active power not above idle"
    else:
        note = ""
    return {"source": out["source"], "mean_w": mean, "energy_j": out["energy_j"], "idle_w": idle,
            "active_w": active, "energy_per_image_j": per_image, "images_per_j": 1.0 / per_image,
            "total_energy_per_image_j": total_per_image, "energy_note": note}


def start_idle_w(idle: pd.DataFrame, board: str) -> dict[tuple[str, str], float]:
    """A board's start idle power per (source, rail), as :func:`job_energy` joins it to a job's rails."""
    by_phase = idle_by_phase(idle)
    mine = by_phase[by_phase["board"] == board]
    return {(s, r): float(w) for s, r, w in zip(mine["source"], mine["rail"], mine["idle_w"])}


def _notes(out: pd.DataFrame) -> np.ndarray:
    """The energy note of each job: why a figure is missing (vectorized: a report may hold a million jobs;
    only the rare uncovered rows are formatted one by one). Idle drift is a board's, shown with its idle."""
    no_source = out["source"].isna()
    uncovered = ~no_source & out["mean_w"].isna()
    notes = np.select(
        [no_source, uncovered, out["idle_w"].isna(), ~(out["active_w"] > 0)],
        ["no power samples", "", IDLE_NOT_MEASURED, "active power not above idle"], default="").astype(object)
    for i in np.flatnonzero(uncovered.to_numpy()):
        row = out.iloc[i]
        notes[i] = coverage_note(row["source"], _num(row["missed_start_s"]), _num(row["missed_end_s"]))
    return notes


def _num(x) -> float:
    return float(x) if pd.notna(x) else 0.0


def windows_of(results: pd.DataFrame) -> pd.DataFrame:
    w = results[["job_id", "window_start_mono_ns", "window_end_mono_ns"]].dropna()
    return pd.DataFrame({
        "job_id": w["job_id"].to_numpy(),
        "t0_s": w["window_start_mono_ns"].to_numpy(dtype=np.float64) / 1e9,
        "t1_s": w["window_end_mono_ns"].to_numpy(dtype=np.float64) / 1e9,
    })


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


def is_simulated(results: pd.DataFrame) -> pd.Series:
    """Per row, whether its power came from a model (rows written before the column existed: no)."""
    return results["power_simulated"].fillna(False).astype(bool)


def simulated_share(results: pd.DataFrame) -> str:
    """'all', 'some' or 'none': how much of the power of the rows with power came from a model."""
    with_power = results[results["meter_kind"].notna()]
    sim = is_simulated(with_power)
    return "all" if len(sim) and sim.all() else ("some" if sim.any() else "none")


STATUS_COLUMNS = ["meter_kind", "mean_power_w", "power_simulated", "meter_rate_hz"]


def energy_status(run: RunDir, results: pd.DataFrame | None = None) -> dict | None:
    """For the end of a sweep: how many jobs have energy, whether it is simulated, the meter's rate.
    ``results``: the run's results with ``STATUS_COLUMNS`` when the caller has read them already."""
    res = read_columns(run, "results", STATUS_COLUMNS) if results is None else results
    res = res[res["meter_kind"].notna()]
    if res.empty:
        return None
    rate = pd.to_numeric(res["meter_rate_hz"], errors="coerce")
    return {
        "jobs": int(len(res)),
        "with_energy": int(res["mean_power_w"].notna().sum()),
        "simulated": simulated_share(res),
        "min_meter_rate_hz": float(rate.min()) if rate.notna().any() else None,
    }


def energy_status_text(status: dict) -> str:
    text = f"energy: {status['with_energy']}/{status['jobs']} jobs"
    if status["simulated"] == "all":
        text += " (simulated power)"
    elif status["simulated"] == "some":
        text += " (some simulated power: see the report)"
    if status["min_meter_rate_hz"] is not None:
        text += f", meter at >= {status['min_meter_rate_hz']:,.0f} samples/s"
    return text


def run_energy(run: RunDir, results: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``job_energy`` for a stored run, reading only the columns it needs."""
    if results is None:
        results = read_columns(run, "results", RESULT_COLUMNS)
    windows = _window_index(windows_of(results))

    def read(files: list) -> list[pd.DataFrame]:
        # Parquet decoding and the numpy passes release the GIL: files in parallel on a thread pool
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            return [p for p in pool.map(lambda f: _group_energy(read_power(f), windows), files) if len(p)]

    parts = run.read_files("power", read)
    power = _combine(parts)
    idle = read_columns(run, "idle", ["board", "source", "rail", "phase", "mean_power_w"])
    return job_energy(results, power, idle)
