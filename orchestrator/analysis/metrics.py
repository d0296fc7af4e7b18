"""Aggregates over stored results: what the report shows, computed once here."""

from __future__ import annotations

import pandas as pd

KEYS = ["board", "soc", "component", "component_class", "model", "model_display", "dtype"]


def throughput_table(results: pd.DataFrame, latencies: pd.DataFrame) -> pd.DataFrame:
    """One row per (board, component, model, dtype).

    Throughput is the mean over repeats of each job's images/s; latency
    percentiles are over every measured inference of those jobs pooled.
    Only VALID jobs count; ``invalid`` says how many were left out.
    """
    if results.empty:
        return pd.DataFrame(columns=KEYS + ["throughput_ips", "latency_p50_ms", "latency_p99_ms", "jobs", "invalid"])
    valid = results[results["verdict"] == "VALID"]
    agg = (
        results.groupby(KEYS, sort=False)
        .agg(jobs=("job_id", "size"), invalid=("verdict", lambda v: int((v != "VALID").sum())))
        .reset_index()
    )
    thr = valid.groupby(KEYS, sort=False)["throughput_ips"].mean().rename("throughput_ips").reset_index()
    lat = latencies.merge(valid[["job_id"] + KEYS], on="job_id")
    pct = (
        lat.groupby(KEYS, sort=False)["latency_ms"]
        .quantile([0.5, 0.99])
        .unstack()
        .rename(columns={0.5: "latency_p50_ms", 0.99: "latency_p99_ms"})
        .reset_index()
    )
    out = agg.merge(thr, on=KEYS, how="left").merge(pct, on=KEYS, how="left")
    return out[KEYS + ["throughput_ips", "latency_p50_ms", "latency_p99_ms", "jobs", "invalid"]]


def pivot_by_component(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """Models x dtypes as rows, components as columns (the study's Table 1 layout)."""
    return table.pivot_table(index=["model_display", "dtype"], columns="component", values=value, aggfunc="first")
