"""Co-execution gain, data-driven.

A co-execution result is a results row whose ``component`` names several
components joined by ``+`` (``a15+a7``), or — when the store grows one — a
``coexec_members`` column listing them. For each such row and its isolated
counterparts (same board, model file, dtype, frequency setting and versions:
:data:`ISOLATED_KEYS`; the member's CPUs are the component's own):

- gain over the best single component = co-execution throughput / max(isolated);
- efficiency vs the sum = co-execution throughput / sum(isolated) (1.0 = no loss).

A member without an isolated measurement leaves both figures empty. No
co-execution rows: an empty table (the report leaves the section out).

``coexec_shares`` gives each member's share of the frames (the agent's
``share_pct``, mean over the VALID repeats): the composition of the stream.

The agent's co-execution figures (``throughput_ips``, ``count``, the window,
``share_pct``) count the frames completed by the stream's close, when the
first member goes idle; a slower member's frames finished after it (its lone
tail) are in the trace but not in these figures (the summary's
``window_rule``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.analysis.series import SERIES_KEYS, keyed, with_series

__all__ = ["coexec_members", "coexec_shares", "coexec_table", "ISOLATED_KEYS"]

SEPARATOR = "+"


def coexec_members(row: pd.Series | dict) -> list[str]:
    members = row.get("coexec_members") if hasattr(row, "get") else None
    if members is not None and not (isinstance(members, float) and np.isnan(members)) and len(members):
        return [str(m) for m in members]
    comp = str(row.get("component") or "")
    return comp.split(SEPARATOR) if SEPARATOR in comp else []


SHARE_KEYS = SERIES_KEYS
# what an isolated counterpart of a co-execution member shares with the co-execution series
ISOLATED_KEYS = ["board", "model", "model_sha256", "dtype", "freq_setting", "runtime_version", "agent_version"]


def coexec_shares(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (board, component, model, dtype, member) of the VALID co-execution jobs: the
    member's mean share of the frames in % (the shares of one configuration sum to 100)."""
    cols = SHARE_KEYS + ["member", "share_pct"]
    if results.empty or "coexec_share_pct" not in results:
        return pd.DataFrame(columns=cols)
    results = results if set(SHARE_KEYS) <= set(results.columns) else with_series(results)
    rows = []
    for rec in results[results["verdict"] == "VALID"].to_dict("records"):
        members, shares = rec.get("coexec_members"), rec.get("coexec_share_pct")
        if members is None or shares is None or len(members) < 2 or len(members) != len(shares):
            continue
        rows += [{**{k: rec[k] for k in SHARE_KEYS}, "member": str(m), "share_pct": float(x)}
                 for m, x in zip(members, shares)]
    if not rows:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(rows).groupby(SHARE_KEYS + ["member"], sort=False)["share_pct"].mean().reset_index()


def coexec_table(table: pd.DataFrame, shares: pd.DataFrame | None = None) -> pd.DataFrame:
    """``shares`` (from ``coexec_shares``) adds ``composition``: "a15 61%, a7 39%"."""
    labels = ["component_label", "model_label"]
    cols = SERIES_KEYS + labels + ["throughput_ips", "members", "best_single", "best_single_ips",
                                   "sum_isolated_ips", "gain_vs_best", "vs_sum", "composition"]
    if table.empty:
        return pd.DataFrame(columns=cols)
    table = keyed(table)
    composition: dict[tuple, str] = {}
    if shares is not None and not shares.empty:
        for key, group in shares.groupby(SHARE_KEYS, sort=False):
            composition[tuple(key)] = ", ".join(f"{m} {x:.0f}%" for m, x in zip(group["member"], group["share_pct"]))
    rows = []
    iso = table.set_index(ISOLATED_KEYS + ["component"])["throughput_ips"]
    iso = iso[~iso.index.duplicated()]  # one isolated series per member (a component's CPUs are fixed)
    for rec in table.to_dict("records"):
        members = coexec_members(rec)
        if len(members) < 2:
            continue
        singles = {m: iso.get(tuple(rec[k] for k in ISOLATED_KEYS) + (m,), np.nan) for m in members}
        known = all(pd.notna(v) for v in singles.values())
        best = max(singles, key=lambda m: singles[m] if pd.notna(singles[m]) else -1)
        thr = rec["throughput_ips"]
        rows.append({**{k: rec.get(k) for k in SERIES_KEYS + labels},
                     "throughput_ips": thr, "members": ", ".join(members),
                     "best_single": best if known else None,
                     "best_single_ips": singles[best] if known else np.nan,
                     "sum_isolated_ips": sum(singles.values()) if known else np.nan,
                     "gain_vs_best": thr / singles[best] if known else np.nan,
                     "vs_sum": thr / sum(singles.values()) if known else np.nan,
                     "composition": composition.get(tuple(rec[k] for k in SHARE_KEYS))})
    return pd.DataFrame(rows, columns=cols)
