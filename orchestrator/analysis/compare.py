"""Ratios between measurements: int8 vs float32, one SoC vs another, one run vs a baseline.

Every ratio is ``a / b`` of throughputs (images/s) or energies per image of
matching rows; a summary over models is the geometric mean of the ratios
(the mean that treats 2x and 0.5x symmetrically). Rows present on one side
only give no ratio.

A SoC / SoC ratio says which way it is taken: the SoCs the user orders
(``--soc-order a,b``: a / b) first, otherwise the newer over the older by the
release years of :mod:`orchestrator.analysis.component_names`, otherwise by
name; its summary gives the geometric *and* the arithmetic mean over models
(the arithmetic mean of a / b is not the reciprocal of that of b / a).

Rows are matched on their series (:mod:`orchestrator.analysis.series`) minus
the one thing the ratio is about: int8 / float32 matches everything but the
dtype and the model file; SoC / SoC matches class, model file, dtype and
frequency setting; run / baseline matches everything but the versions.

A side measured on a board with an emulated userland
(:mod:`orchestrator.analysis.emulation`) is named: SoC / SoC ratios carry
``emulated_a`` / ``emulated_b`` and their summary an ``emulated`` text; a run /
baseline pair where only one side is emulated gets no ratio (emulator against
SoC is no comparison) and says why in ``note``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.analysis.component_names import soc_key, soc_year
from orchestrator.analysis.emulation import NOT_PERFORMANCE, emulation_column, emulation_of
from orchestrator.analysis.series import COMPARE_KEYS, SERIES_KEYS, keyed
from orchestrator.errors import ConfigError

__all__ = ["geomean", "quantization_table", "order_socs", "soc_pairs", "cross_soc", "cross_soc_summary",
           "baseline_comparison"]


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
#: the order classes are listed in
CLASS_ORDER = ("little", "big", "cpu", "gpu", "npu")


def _best_per_class(table: pd.DataFrame) -> pd.DataFrame:
    """Per SoC and cross key: the fastest series' throughput, and whether that one was emulated."""
    t = keyed(table).dropna(subset=["throughput_ips"]).reset_index(drop=True)
    t = t.assign(emulated=emulation_column(t), throughput_ips=pd.to_numeric(t["throughput_ips"]))
    best = t.groupby(["soc"] + _CROSS_KEYS, sort=False)["throughput_ips"].idxmax()
    return t.loc[best.to_numpy(), ["soc"] + _CROSS_KEYS + ["throughput_ips", "emulated"]].reset_index(drop=True)


def order_socs(socs, soc_order=None) -> list[str]:
    """The SoCs in the order their ratios are taken: first the ones ``soc_order`` names, as named; then the
    rest newest first by :data:`~orchestrator.analysis.component_names.SOC_YEARS`, then by name.

    A name of ``soc_order`` that is not one of ``socs`` (compared as :func:`soc_key`) is a ConfigError."""
    socs = list(dict.fromkeys(str(s) for s in socs))
    by_key = {soc_key(s): s for s in socs}
    given = [g.strip() for g in (soc_order or []) if g and g.strip()]
    problems = [f"--soc-order: {g!r} is not a SoC of these results (they have: {', '.join(socs) or 'none'})"
                for g in given if soc_key(g) not in by_key]
    seen: set[str] = set()
    for g in given:
        if soc_key(g) in seen:
            problems.append(f"--soc-order: {g!r} is named twice")
        seen.add(soc_key(g))
    if problems:
        raise ConfigError("invalid --soc-order", problems)
    listed = list(dict.fromkeys(by_key[soc_key(g)] for g in given))
    rest = sorted((s for s in socs if s not in listed),
                  key=lambda s: (soc_year(s) is None, -(soc_year(s) or 0), s))
    return listed + rest


def soc_pairs(socs, soc_order=None) -> list[tuple[str, str, str]]:
    """Every pair ``(a, b, basis)`` of ``socs`` with the ratio taken ``a / b``; ``basis`` says why this way:
    ``--soc-order``, ``newer / older: 2017 / 2014``, or ``by name`` when the release years do not decide."""
    order = order_socs(socs, soc_order)
    listed = {soc_key(g) for g in (soc_order or []) if g and g.strip()}
    pairs = []
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            ya, yb = soc_year(a), soc_year(b)
            if soc_key(a) in listed:
                basis = "as ordered by --soc-order"
            elif ya is not None and yb is not None and ya != yb:
                basis = f"newer / older: {ya} / {yb}"
            elif ya is not None and ya == yb:
                basis = f"by name (both from {ya}; order them with --soc-order)"
            else:
                unknown = " and ".join(s for s, y in ((a, ya), (b, yb)) if y is None)
                basis = f"by name (release year of {unknown} not known; order them with --soc-order)"
            pairs.append((a, b, basis))
    return pairs


def cross_soc(table: pd.DataFrame, soc_order=None) -> pd.DataFrame:
    """For every pair of SoCs and every component class both have: per-model throughput ratio soc_a / soc_b,
    of the same model file and dtype at the same frequency setting (``max`` against ``max``, untouched against
    untouched; a kHz pin only against the same pin).

    Which SoC is ``a`` (the numerator): see :func:`soc_pairs` (``soc_order`` first, else newer / older);
    ``direction`` is ``"a / b"`` and ``basis`` says why. A class with several components on one SoC (two
    'cpu' clusters) is represented by its fastest one; ``emulated_a`` / ``emulated_b``: what emulated the
    userland of that one's board (``""``: a real board).
    """
    cols = ["soc_a", "soc_b", "direction", "basis", "component_class", "model", "model_display", "dtype",
            "freq_setting", "ips_a", "ips_b", "ratio", "emulated_a", "emulated_b"]
    if table.empty:
        if soc_order:
            order_socs([], soc_order)  # names nothing that is here
        return pd.DataFrame(columns=cols)
    pairs_of = soc_pairs(table["soc"].dropna().astype(str), soc_order)
    best = _best_per_class(table)
    parts = []
    for a, b, basis in pairs_of:
        m = best[best["soc"] == a].merge(best[best["soc"] == b], on=_CROSS_KEYS, suffixes=("_a", "_b"))
        if m.empty:
            continue
        m = m.rename(columns={"throughput_ips_a": "ips_a", "throughput_ips_b": "ips_b"})
        m["ratio"] = m["ips_a"] / m["ips_b"]
        m["direction"] = f"{a} / {b}"
        m["basis"] = basis
        rank = m["component_class"].map({c: i for i, c in enumerate(CLASS_ORDER)}).fillna(len(CLASS_ORDER))
        parts.append(m.assign(_rank=rank).sort_values(["_rank", "dtype", "freq_setting"], kind="stable")[cols])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def cross_soc_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (soc_a, soc_b, class, dtype, frequency setting): the per-model ratios (``per_model``: a list of
    ``{"model", "ratio"}``), their geometric mean (``geomean_ratio``: 2x and 0.5x cancel) and their arithmetic
    mean (``mean_ratio``: what a plain average of the table gives; larger, and not the reciprocal of the other
    direction's).  ``direction`` and ``basis`` as in :func:`cross_soc`; ``emulated``: which side ran in an
    emulated userland (``"exynos5422 emulated (qemu-user armhf, Debian 12)"``; ``""``: neither), and a
    per-model entry with an emulated side says ``"emulated": True``."""
    cols = ["soc_a", "soc_b", "direction", "basis", "component_class", "dtype", "freq_setting", "models",
            "geomean_ratio", "mean_ratio", "per_model", "emulated"]
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    keys = ["soc_a", "soc_b", "direction", "basis", "component_class", "dtype", "freq_setting"]
    pairs = pairs.assign(emulated_a=emulation_column(pairs, "emulated_a"),
                         emulated_b=emulation_column(pairs, "emulated_b"))
    rows = []
    for key, g in pairs.groupby(keys, sort=False):
        ratios = pd.to_numeric(g["ratio"], errors="coerce")
        label = g["model_display"].where(g["model_display"].astype(str) != "", g["model"])
        either = (g["emulated_a"] != "") | (g["emulated_b"] != "")
        row = dict(zip(keys, key))
        sides = [f"{row[soc]} emulated ({emulation_of(g[col])})" for soc, col in
                 (("soc_a", "emulated_a"), ("soc_b", "emulated_b")) if (g[col] != "").any()]
        rows.append({**row, "models": int(ratios.notna().sum()), "geomean_ratio": geomean(ratios),
                     "mean_ratio": float(ratios.mean()),
                     "per_model": [{"model": str(m), "ratio": float(r), **({"emulated": True} if e else {})}
                                   for m, r, e in zip(label, ratios, either)],
                     "emulated": "; ".join(sides)})
    return pd.DataFrame(rows, columns=cols)


def baseline_comparison(current: pd.DataFrame, baseline: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per series (matched on everything but the versions): throughput current / baseline; and their
    geometric mean. A series on one side only has no ratio; nor has one emulated on one side only (``note``
    says which: an emulator's timings against a real board's are no comparison). ``emulated`` and
    ``baseline_emulated``: what emulated each side's userland (``""``: a real board)."""
    labels = ["component_label", "model_label"]
    cols = COMPARE_KEYS + labels + ["ips", "baseline_ips", "ratio", "emulated", "baseline_emulated", "note"]
    if current.empty or baseline.empty:
        return pd.DataFrame(columns=cols), float("nan")
    current, baseline = keyed(current), keyed(baseline)
    current = current.assign(emulated=emulation_column(current))
    baseline = baseline.assign(emulated=emulation_column(baseline))
    m = current[COMPARE_KEYS + labels + ["throughput_ips", "emulated"]].merge(
        baseline[COMPARE_KEYS + labels + ["throughput_ips", "emulated"]], on=COMPARE_KEYS, suffixes=("", "_base"),
        how="outer")
    for label in labels:
        m[label] = m[label].fillna(m[label + "_base"])
    m = m.rename(columns={"throughput_ips": "ips", "throughput_ips_base": "baseline_ips",
                          "emulated_base": "baseline_emulated"})
    m["emulated"] = m["emulated"].fillna("")
    m["baseline_emulated"] = m["baseline_emulated"].fillna("")
    m["ratio"] = m["ips"] / m["baseline_ips"]
    mixed = m["ips"].notna() & m["baseline_ips"].notna() & ((m["emulated"] != "") != (m["baseline_emulated"] != ""))
    m.loc[mixed, "ratio"] = np.nan
    m["note"] = ""
    m.loc[mixed & (m["emulated"] != ""), "note"] = "not compared: emulated in this run, a real board in the baseline"
    m.loc[mixed & (m["baseline_emulated"] != ""), "note"] = ("not compared: emulated in the baseline, a real board "
                                                             "in this run")
    both = (m["emulated"] != "") & (m["baseline_emulated"] != "")
    m.loc[both, "note"] = f"emulated on both sides: {NOT_PERFORMANCE}"
    return m[cols], geomean(m["ratio"])
