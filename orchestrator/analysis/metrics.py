"""Aggregates over stored results: what the report shows, computed once here."""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.analysis.emulation import emulation_column
from orchestrator.analysis.series import SERIES_KEYS, with_labels, with_series

KEYS = SERIES_KEYS


def throughput_table(results: pd.DataFrame, latencies: pd.DataFrame) -> pd.DataFrame:
    """One row per series (:mod:`orchestrator.analysis.series`: board, component with its CPUs, threads and
    frequency setting, model file, dtype, versions), with its ``component_label`` and ``model_label``.

    Throughput is the mean over repeats of each job's images/s; latency
    percentiles are over every measured inference of those jobs pooled.
    Only VALID jobs count; ``invalid`` says how many were left out; ``temp_max_c`` is the hottest zone
    reading over all of the series' jobs (null where no zone was watched); ``emulated`` what emulated the
    board's userland (:mod:`orchestrator.analysis.emulation`; ``""``: a real board, or no such column).
    """
    if results.empty:
        return pd.DataFrame(columns=KEYS + ["throughput_ips", "latency_p50_ms", "latency_p99_ms", "jobs", "invalid",
                                            "temp_max_c", "emulated", "component_label", "model_label"])
    if not set(KEYS) <= set(results.columns):
        results = with_series(results)
    temps = results["temp_max_c"] if "temp_max_c" in results.columns else pd.Series(np.nan, index=results.index)
    # a narrow copy, not the whole row set; emulated: null where not, so that "first" finds the description
    emulated = emulation_column(results)
    results = results[["job_id", "verdict", "throughput_ips"] + KEYS].assign(
        temp_max_c=pd.to_numeric(temps, errors="coerce"), emulated=emulated.where(emulated != "", None))
    valid = results[results["verdict"] == "VALID"]
    agg = (
        results.assign(_invalid=(results["verdict"] != "VALID").astype(int))
        .groupby(KEYS, sort=False, dropna=False)
        .agg(jobs=("job_id", "size"), invalid=("_invalid", "sum"), temp_max_c=("temp_max_c", "max"),
             emulated=("emulated", "first"))
        .reset_index()
    )
    thr = valid.groupby(KEYS, sort=False, dropna=False)["throughput_ips"].mean().rename("throughput_ips").reset_index()
    # pool the latencies per series through integer codes (no per-sample copy of the key columns)
    series = valid[KEYS].drop_duplicates().reset_index(drop=True)
    job_series = valid[["job_id"] + KEYS].merge(series.reset_index(names="_series"), on=KEYS, how="left")
    lat_jobs = latencies["job_id"]
    if isinstance(lat_jobs.dtype, pd.CategoricalDtype):  # 10^7 rows: look up the categories only
        cat_pos = pd.Index(job_series["job_id"]).get_indexer(lat_jobs.cat.categories)
        codes_ = lat_jobs.cat.codes.to_numpy()
        job_pos = np.where(codes_ >= 0, cat_pos[codes_], -1)
    else:
        job_pos = pd.Index(job_series["job_id"]).get_indexer(lat_jobs)
    keep = job_pos >= 0
    codes = job_series["_series"].to_numpy()[job_pos[keep]]
    values = latencies["latency_ms"].to_numpy()[keep]
    if values.size == 0:
        pct = pd.DataFrame(columns=KEYS + ["latency_p50_ms", "latency_p99_ms"]).astype(
            {"latency_p50_ms": float, "latency_p99_ms": float})
        pct[KEYS] = pct[KEYS].astype(thr[KEYS].dtypes.to_dict())
    else:
        present, p50, p99 = _grouped_quantiles(codes, values, (0.5, 0.99))
        pct = series.iloc[present].reset_index(drop=True).assign(latency_p50_ms=p50, latency_p99_ms=p99)
    out = agg.merge(thr, on=KEYS, how="left").merge(pct, on=KEYS, how="left")
    out["emulated"] = emulation_column(out)
    return with_labels(out[KEYS + ["throughput_ips", "latency_p50_ms", "latency_p99_ms", "jobs", "invalid",
                                    "temp_max_c", "emulated"]])


def _grouped_quantiles(codes: np.ndarray, values: np.ndarray, qs: tuple[float, ...]):
    """Per group code: the quantiles of its values with linear interpolation (pandas' and numpy's default),
    through one sort by group and a loop over the groups (not the rows). Returns (codes present, one array per q)."""
    order = np.argsort(codes, kind="stable")
    v = values[order]
    counts = np.bincount(codes, minlength=int(codes.max()) + 1)
    present = np.flatnonzero(counts)
    ends = np.cumsum(counts)[present]
    starts = ends - counts[present]
    grid = np.array([np.quantile(v[s:e], qs) for s, e in zip(starts, ends)]).reshape(len(present), len(qs))
    out = [grid[:, i] for i in range(len(qs))]
    return (present, *out)
