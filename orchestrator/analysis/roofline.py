"""Roofline points: attained GFLOP/s of each model on each component under its roof.

- peak compute: ``run.json`` ``boards[<board>].components[<name>].peak_gflops``
  (theoretical fp32 peak of the inventory; used for int8 too, stated in the report);
- memory bandwidth: the ``membw`` table of the run, the triad kernel when
  measured (else the best kernel measured) for that board and component:
  the bytes the agent's kernel really moves (triad: 5 array passes, not
  STREAM's 3) with one pinned thread per CPU of the component;
- operational intensity and FLOPs per image: the model file itself
  (:mod:`orchestrator.analysis.model_info`), found as ``results.model_file``
  relative to ``run.json``'s ``zoo_dir``;
- attained GFLOP/s = throughput (images/s) x FLOPs per image / 1e9;
- roof = min(peak, bandwidth x intensity); a point is memory-bound when its
  intensity is below the ridge point peak / bandwidth, else compute-bound.

Components without a peak or a bandwidth are returned in ``missing`` with the
reason ("not enough data"), never plotted against a guessed roof.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.analysis.model_info import ModelInfo, analyze
from orchestrator.errors import ZooError

__all__ = ["Roofline", "roofline", "component_roofs", "best_bandwidth", "model_figures"]

NOT_ENOUGH_DATA = "not enough data"


@dataclass(frozen=True)
class Roofline:
    roofs: pd.DataFrame  # board, soc, component, component_class, peak_gflops, bandwidth_gb_s, bandwidth_kernel, ridge
    points: pd.DataFrame  # + model, dtype, intensity, flops_per_image, attained_gflops, roof_gflops, bound, efficiency
    missing: pd.DataFrame  # board, component, reason


def best_bandwidth(membw: pd.DataFrame) -> pd.DataFrame:
    """Per (board, component): triad when measured, else the best kernel measured."""
    cols = ["board", "component", "bandwidth_gb_s", "bandwidth_kernel"]
    if membw.empty:
        return pd.DataFrame(columns=cols)
    m = membw.dropna(subset=["gb_per_s"])
    m = m.assign(pref=np.where(m["kernel"] == "triad", 0, 1))
    m = m.sort_values(["board", "component", "pref", "gb_per_s"], ascending=[True, True, True, False])
    m = m.drop_duplicates(["board", "component"])
    return m.rename(columns={"gb_per_s": "bandwidth_gb_s", "kernel": "bandwidth_kernel"})[cols]


def component_roofs(meta: dict[str, Any], membw: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for board, entry in (meta.get("boards") or {}).items():
        for comp in entry.get("components", []):
            rows.append({"board": board, "soc": entry.get("soc"), "component": comp.get("name"),
                         "component_class": comp.get("class") or comp.get("component_class"),
                         "peak_gflops": comp.get("peak_gflops")})
    roofs = pd.DataFrame(rows, columns=["board", "soc", "component", "component_class", "peak_gflops"])
    roofs = roofs.merge(best_bandwidth(membw), on=["board", "component"], how="left")
    roofs["peak_gflops"] = pd.to_numeric(roofs["peak_gflops"], errors="coerce")
    roofs["ridge_flop_per_byte"] = roofs["peak_gflops"] / roofs["bandwidth_gb_s"]
    return roofs


@lru_cache(maxsize=256)
def _analyze_cached(path: str, mtime_ns: int, size: int) -> ModelInfo:
    return analyze(path)


def model_figures(zoo_dir: str | Path | None, model_files: list[str]) -> pd.DataFrame:
    """FLOPs per image and intensity of each model file (a missing or unreadable file: NaN and a reason)."""
    rows = []
    for f in model_files:
        row: dict[str, Any] = {"model_file": f, "flops_per_image": np.nan, "intensity_flop_per_byte": np.nan,
                               "model_problem": ""}
        if not f or zoo_dir is None:
            row["model_problem"] = "model file unknown"
        else:
            path = Path(zoo_dir) / f
            try:
                st = path.stat()
                info = _analyze_cached(str(path), st.st_mtime_ns, st.st_size)
                row["flops_per_image"] = float(info.flops)
                row["intensity_flop_per_byte"] = info.intensity_flop_per_byte
            except OSError:
                row["model_problem"] = f"model file {path} not found"
            except ZooError as exc:
                row["model_problem"] = str(exc)
        rows.append(row)
    return pd.DataFrame(rows, columns=["model_file", "flops_per_image", "intensity_flop_per_byte", "model_problem"])


def roofline(meta: dict[str, Any], throughput: pd.DataFrame, membw: pd.DataFrame) -> Roofline:
    """``throughput``: one row per (board, component, model, dtype) with throughput_ips and model_file."""
    roofs = component_roofs(meta, membw)
    missing = []
    for r in roofs.itertuples():
        lacks = [n for n, v in (("peak_gflops", r.peak_gflops), ("memory bandwidth", r.bandwidth_gb_s))
                 if v is None or pd.isna(v)]
        if lacks:
            missing.append({"board": r.board, "component": r.component,
                            "reason": f"{NOT_ENOUGH_DATA}: no {' and no '.join(lacks)}"})
    complete = roofs.dropna(subset=["peak_gflops", "bandwidth_gb_s"])
    files = sorted({f for f in throughput.get("model_file", pd.Series(dtype=str)).dropna()})
    figures = model_figures(meta.get("zoo_dir"), files)
    pts = throughput.merge(complete[["board", "component", "peak_gflops", "bandwidth_gb_s", "ridge_flop_per_byte"]],
                           on=["board", "component"], how="inner")
    pts = pts.merge(figures, on="model_file", how="left")
    for r in pts[pts["flops_per_image"].isna()].drop_duplicates("model_file").itertuples():
        missing.append({"board": r.board, "component": r.component,
                        "reason": f"{NOT_ENOUGH_DATA}: {r.model_problem or 'model figures unknown'}"})
    pts = pts.dropna(subset=["flops_per_image", "throughput_ips"]).copy()
    pts["attained_gflops"] = pts["throughput_ips"] * pts["flops_per_image"] / 1e9
    pts["roof_gflops"] = np.minimum(pts["peak_gflops"], pts["bandwidth_gb_s"] * pts["intensity_flop_per_byte"])
    pts["bound"] = np.where(pts["intensity_flop_per_byte"] < pts["ridge_flop_per_byte"], "memory", "compute")
    pts["efficiency"] = pts["attained_gflops"] / pts["roof_gflops"]
    return Roofline(roofs=roofs, points=pts.reset_index(drop=True),
                    missing=pd.DataFrame(missing, columns=["board", "component", "reason"]))
