"""What a series is: every setting that changes what a job measures. One place for the key and its labels.

A *series* is the set of jobs (repeats) whose figures may be averaged together. Two jobs belong to the same
series only when they agree on everything that shapes the measurement:

- the board (and its SoC), the component (its class, CPUs and threads),
- the model (by name *and* by the sha256 of the file that ran) and its dtype,
- the frequency setting (``max``, a kHz pin, or untouched),
- the runtime's and the agent's versions.

Every table, ratio and plot of one run groups by :data:`SERIES_KEYS`. Comparisons *across* runs (regression
against a baseline, change points over the history) match series on :data:`COMPARE_KEYS`, which leaves the
versions out so that an upgrade is compared against what ran before it, and names the version change instead
of hiding it as "no baseline".

Where a table shows a series by name, :func:`with_labels` gives it a component label (``A15 @ 1.4 GHz``) and a
model label that name what differs only when it differs in the frame shown (CPUs/threads, sha256, versions).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

__all__ = ["SERIES_KEYS", "COMPARE_KEYS", "VERSION_KEYS", "SOURCE_COLUMNS", "with_series", "with_labels",
           "keyed", "freq_label", "cpus_text", "series_names"]

# Key columns, all strings after with_series (missing or null -> "").
SERIES_KEYS = ["board", "soc", "component", "component_class", "cpus_key", "threads_key", "model",
               "model_display", "model_sha256", "dtype", "freq_setting", "runtime_version", "agent_version"]
VERSION_KEYS = ["runtime_version", "agent_version"]
COMPARE_KEYS = [k for k in SERIES_KEYS if k not in VERSION_KEYS]
# The results columns the keys are made from.
SOURCE_COLUMNS = ["board", "soc", "component", "component_class", "cpus", "threads", "model", "model_display",
                  "model_sha256", "dtype", "freq_requested", "runtime_version", "agent_version"]
_PLAIN = [k for k in SERIES_KEYS if k not in ("cpus_key", "threads_key", "freq_setting")]


def cpus_text(cpus) -> str:
    """``[4, 5, 6, 7]`` -> ``"4-7"``, ``[0, 2]`` -> ``"0,2"``; nothing -> ``""``."""
    if cpus is None or (not isinstance(cpus, str) and pd.api.types.is_scalar(cpus) and pd.isna(cpus)):
        return ""
    values = sorted(int(c) for c in cpus)
    if not values:
        return ""
    if values == list(range(values[0], values[-1] + 1)) and len(values) > 2:
        return f"{values[0]}-{values[-1]}"
    return ",".join(str(v) for v in values)


def freq_label(setting: str | None) -> str:
    """``"max"`` -> ``"max"``; kHz text -> ``"1.4 GHz"`` / ``"600 MHz"``; untouched -> ``""``."""
    if setting is None or setting == "" or (not isinstance(setting, str) and pd.isna(setting)):
        return ""
    if setting == "max":
        return "max"
    try:
        khz = int(setting)
    except ValueError:
        return str(setting)
    if khz >= 1_000_000:
        return f"{khz / 1e6:g} GHz"
    return f"{khz / 1e3:g} MHz"


def _text(col: pd.Series) -> pd.Series:
    return col.astype(object).where(col.notna(), "").astype(str)


def with_series(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with every :data:`SERIES_KEYS` column present and a string (``""`` for unknown/untouched).

    Rows written before a column existed (imported tables, older schema versions) get ``""`` there, so they
    form a series of their own rather than being dropped by a group-by.
    """
    out = results.copy()
    n = len(out)
    for k in _PLAIN:
        out[k] = _text(out[k]) if k in out.columns else pd.Series([""] * n, index=out.index, dtype=object)
    out["cpus_key"] = out["cpus"].map(cpus_text) if "cpus" in out.columns else ""
    if "threads" in out.columns:
        threads = pd.to_numeric(out["threads"], errors="coerce")
        out["threads_key"] = threads.map(lambda t: "" if pd.isna(t) else str(int(t)))
    else:
        out["threads_key"] = ""
    out["freq_setting"] = _text(out["freq_requested"]) if "freq_requested" in out.columns else ""
    return out


def _varies(frame: pd.DataFrame, within: Sequence[str], column: str) -> pd.Series:
    """Per row: does ``column`` take more than one value among the rows sharing ``within``?"""
    if frame.empty:
        return pd.Series([], dtype=bool, index=frame.index)
    return frame.groupby(list(within), sort=False, dropna=False)[column].transform("nunique") > 1


def with_labels(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``component_label`` and ``model_label`` to a table keyed by :data:`SERIES_KEYS`.

    The component label carries the frequency setting whenever one was requested (``A15 @ 1.4 GHz``,
    ``A15 @ max``), and the CPUs/threads only when the same component appears with several of them; the model
    label carries a short sha256 only when one model name ran as different files, and the versions only
    when they differ for the same board.
    """
    t = table.copy()
    comp = t["component"].astype(str)
    freq = t["freq_setting"].map(freq_label)
    comp = comp.where(freq == "", comp + " @ " + freq)
    varies_cpus = _varies(t, ["board", "component"], "cpus_key") | _varies(t, ["board", "component"], "threads_key")
    detail = ("cpus " + t["cpus_key"] + ", " + t["threads_key"] + " threads").str.replace(",  threads", "")
    comp = comp.where(~varies_cpus, comp + " (" + detail + ")")
    model = t["model_display"].where(t["model_display"] != "", t["model"]).astype(str)
    varies_sha = _varies(t, ["model", "dtype"], "model_sha256")
    model = model.where(~varies_sha, model + " [" + t["model_sha256"].str[:8] + "]")
    for key, short in (("runtime_version", "runtime"), ("agent_version", "agent")):
        v = _varies(t, ["board"], key)
        model = model.where(~v, model + f" ({short} " + t[key] + ")")
    t["component_label"] = comp
    t["model_label"] = model
    return t


def keyed(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the series keys and labels, adding only what it lacks (tables built by hand, imports)."""
    if not set(SERIES_KEYS) <= set(table.columns):
        table = with_series(table)
    if not {"component_label", "model_label"} <= set(table.columns):
        table = with_labels(table)
    return table


def series_names(table: pd.DataFrame) -> pd.Series:
    """``board/component label/model label/dtype``: one readable name per row (for verdicts and logs)."""
    t = table if "component_label" in table.columns else with_labels(table)
    return t["board"] + "/" + t["component_label"] + "/" + t["model_label"] + "/" + t["dtype"]
