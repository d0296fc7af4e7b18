"""Co-execution gain, data-driven.

A co-execution result is a results row whose ``component`` names several
components joined by ``+`` (``a15+a7``), or — when the store grows one — a
``coexec_members`` column listing them. For each such row and its isolated
counterparts on the same board, model and dtype:

- gain over the best single component = co-execution throughput / max(isolated);
- efficiency vs the sum = co-execution throughput / sum(isolated) (1.0 = no loss).

A member without an isolated measurement leaves both figures empty. No
co-execution rows: an empty table (the report leaves the section out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["coexec_members", "coexec_table"]

SEPARATOR = "+"


def coexec_members(row: pd.Series | dict) -> list[str]:
    members = row.get("coexec_members") if hasattr(row, "get") else None
    if members is not None and not (isinstance(members, float) and np.isnan(members)) and len(members):
        return [str(m) for m in members]
    comp = str(row.get("component") or "")
    return comp.split(SEPARATOR) if SEPARATOR in comp else []


def coexec_table(table: pd.DataFrame) -> pd.DataFrame:
    cols = ["board", "soc", "component", "model", "model_display", "dtype", "throughput_ips", "members",
            "best_single", "best_single_ips", "sum_isolated_ips", "gain_vs_best", "vs_sum"]
    if table.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    iso = table.set_index(["board", "model", "dtype", "component"])["throughput_ips"]
    iso = iso[~iso.index.duplicated()]
    for rec in table.to_dict("records"):
        members = coexec_members(rec)
        if len(members) < 2:
            continue
        singles = {m: iso.get((rec["board"], rec["model"], rec["dtype"], m), np.nan) for m in members}
        known = all(pd.notna(v) for v in singles.values())
        best = max(singles, key=lambda m: singles[m] if pd.notna(singles[m]) else -1)
        thr = rec["throughput_ips"]
        rows.append({**{k: rec.get(k) for k in ("board", "soc", "component", "model", "model_display", "dtype")},
                     "throughput_ips": thr, "members": ", ".join(members),
                     "best_single": best if known else None,
                     "best_single_ips": singles[best] if known else np.nan,
                     "sum_isolated_ips": sum(singles.values()) if known else np.nan,
                     "gain_vs_best": thr / singles[best] if known else np.nan,
                     "vs_sum": thr / sum(singles.values()) if known else np.nan})
    return pd.DataFrame(rows, columns=cols)
