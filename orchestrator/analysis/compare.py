"""Ratios between measurements: int8 vs float32, one SoC vs another, one run vs a baseline.

Every ratio is ``a / b`` of throughputs (images/s) or energies per image of
matching rows; a summary over models is the geometric mean of the ratios
(the mean that treats 2x and 0.5x symmetrically). Rows present on one side
only give no ratio.

Rows are matched on their series (:mod:`orchestrator.analysis.series`) minus
the one thing the ratio is about: int8 / float32 matches everything but the
dtype and the model file; SoC / SoC matches class, model file, dtype and
frequency setting; run / baseline matches everything but the versions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.analysis.series import COMPARE_KEYS, SERIES_KEYS, keyed

__all__ = ["geomean", "quantization_table", "cross_soc", "cross_soc_summary", "baseline_comparison"]

CLASSES = ("big", "little", "gpu", "npu", "cpu")


def geomean(values) -> float:
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce").dropna(), dtype=float)
    v = v[v > 0]
    return float(np.exp(np.log(v).mean())) if v.size else float("nan")


def quantization_table(table: pd.DataFrame, energy: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per series but the dtype: int8 / float32 throughput and energy-per-image ratios.

    ``table``: the throughput table (series keys, labels, throughput_ips);
    ``energy``: the energy summary (series keys and ``energy_per_image_j``, mean over jobs).
    """
    keys = [k for k in SERIES_KEYS if k not in ("dtype", "model_sha256")] + ["component_label"]
    cols = keys + ["float32_ips", "int8_ips", "throughput_ratio", "float32_j", "int8_j", "energy_ratio"]
    if table.empty:
        return pd.DataFrame(columns=cols)
    table = keyed(table)
    thr = table.pivot_table(index=keys, columns="dtype", values="throughput_ips", aggfunc="first")
    if not {"float32", "int8"} <= set(thr.columns):
        return pd.DataFrame(columns=cols)
    out = thr[["float32", "int8"]].rename(columns={"float32": "float32_ips", "int8": "int8_ips"})
    out["throughput_ratio"] = out["int8_ips"] / out["float32_ips"]
    out["float32_j"] = np.nan
    out["int8_j"] = np.nan
    if energy is not None and not energy.empty and energy["energy_per_image_j"].notna().any():
        e = keyed(energy).dropna(subset=["energy_per_image_j"]).pivot_table(
            index=keys, columns="dtype", values="energy_per_image_j", aggfunc="mean")
        for d in ("float32", "int8"):
            if d in e.columns:
                out[f"{d}_j"] = e[d].reindex(out.index)
    out["energy_ratio"] = out["int8_j"] / out["float32_j"]
    out = out.dropna(subset=["throughput_ratio"]).reset_index()
    return out[cols]


_CROSS_KEYS = ["component_class", "model", "model_display", "model_sha256", "dtype", "freq_setting"]


def _best_per_class(table: pd.DataFrame) -> pd.DataFrame:
    t = keyed(table).dropna(subset=["throughput_ips"])
    return t.groupby(["soc"] + _CROSS_KEYS, sort=False)["throughput_ips"].max().reset_index()


def cross_soc(table: pd.DataFrame) -> pd.DataFrame:
    """For every pair of SoCs and every component class both have: per-model throughput ratio soc_a / soc_b,
    of the same model file and dtype at the same frequency setting (``max`` against ``max``, untouched against
    untouched; a kHz pin only against the same pin).

    A class with several components on one SoC (two 'cpu' clusters) is represented by its fastest one.
    """
    cols = ["soc_a", "soc_b", "component_class", "model", "model_display", "dtype", "freq_setting", "ips_a",
            "ips_b", "ratio"]
    if table.empty:
        return pd.DataFrame(columns=cols)
    best = _best_per_class(table)
    socs = list(dict.fromkeys(best["soc"]))
    parts = []
    for i, a in enumerate(socs):
        for b in socs[i + 1:]:
            m = best[best["soc"] == a].merge(best[best["soc"] == b], on=_CROSS_KEYS, suffixes=("_a", "_b"))
            if m.empty:
                continue
            m = m.rename(columns={"throughput_ips_a": "ips_a", "throughput_ips_b": "ips_b"})
            m["ratio"] = m["ips_a"] / m["ips_b"]
            parts.append(m[cols])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def cross_soc_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Geometric mean over models of each (soc_a, soc_b, class, dtype, frequency setting)."""
    cols = ["soc_a", "soc_b", "component_class", "dtype", "freq_setting", "models", "geomean_ratio"]
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    g = (pairs.groupby(["soc_a", "soc_b", "component_class", "dtype", "freq_setting"], sort=False)
         .agg(models=("ratio", "size"), geomean_ratio=("ratio", geomean)).reset_index())
    return g[cols]


def baseline_comparison(current: pd.DataFrame, baseline: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per series (matched on everything but the versions): throughput current / baseline; and their
    geometric mean. A series on one side only has no ratio."""
    labels = ["component_label", "model_label"]
    cols = COMPARE_KEYS + labels + ["ips", "baseline_ips", "ratio"]
    if current.empty or baseline.empty:
        return pd.DataFrame(columns=cols), float("nan")
    current, baseline = keyed(current), keyed(baseline)
    m = current[COMPARE_KEYS + labels + ["throughput_ips"]].merge(
        baseline[COMPARE_KEYS + labels + ["throughput_ips"]], on=COMPARE_KEYS, suffixes=("", "_base"), how="outer")
    for label in labels:
        m[label] = m[label].fillna(m[label + "_base"])
    m = m.rename(columns={"throughput_ips": "ips", "throughput_ips_base": "baseline_ips"})
    m["ratio"] = m["ips"] / m["baseline_ips"]
    return m[cols], geomean(m["ratio"])
