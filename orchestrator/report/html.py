"""`reports/<run>/index.html`, `results.csv` and `summary.md` from the store alone.

Renders what :mod:`orchestrator.analysis.run_analysis` computed; computes nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from orchestrator.analysis.compare import cross_soc, cross_soc_summary
from orchestrator.analysis.deployment import Deployment
from orchestrator.analysis.emulation import NOT_PERFORMANCE, emulation_column, label_of
from orchestrator.analysis.energy import simulated_share
from orchestrator.analysis.run_analysis import RunAnalysis, analyze_run, job_details
from orchestrator.analysis.series import freq_label
from orchestrator.analysis.tables import export_csv
from orchestrator.report.plots import (
    efficiency_bars,
    pareto_plot,
    ratio_heatmap,
    coexec_share_bars,
    roofline_plot,
    throughput_bars,
)
from orchestrator.results.schema import RESULTS
from orchestrator.results.store import RunDir
from orchestrator.zoo.manifest import load_manifest

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.report", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
)
_MD = jinja2.Environment(loader=jinja2.PackageLoader("orchestrator.report", "templates"), autoescape=False,
                         undefined=jinja2.StrictUndefined)

#: above this many jobs the page lists only the non-VALID ones (results.csv has them all)
MAX_JOB_ROWS = 2000


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    try:
        return f"{value:.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


for _env in (_ENV, _MD):
    _env.filters["fmt"] = _fmt
    _env.filters["freq"] = freq_label


def _board_tables(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Per SoC and board: models x dtypes as rows, components as columns (the study's Table 1 layout); a
    component measured at two frequency settings (or CPU/thread settings) is two columns."""
    boards = []
    for board, data in table.groupby("board", sort=False):
        components = list(dict.fromkeys(data["component_label"]))
        rows = []
        for (model, dtype), cell_rows in data.groupby(["model_label", "dtype"], sort=False):
            cells = {r["component_label"]: r for r in cell_rows.to_dict("records")}
            rows.append({"model": model, "dtype": dtype, "cells": [cells.get(c) for c in components]})
        boards.append({"name": board, "soc": data["soc"].iloc[0], "components": components, "rows": rows})
    return boards


def _thermal_summary(results: pd.DataFrame) -> list[dict[str, Any]]:
    """Per board: the hottest zone reading of its jobs, the hottest start, and the cool-down waited in total."""
    r = results.dropna(subset=["temp_max_c"])
    if r.empty:
        return []
    g = r.groupby("board", sort=True).agg(max_c=("temp_max_c", "max"), start_c=("temp_start_c", "max"),
                                          wait_s=("cooldown_wait_s", "sum"),
                                          simulated=("temp_simulated", lambda x: bool(x.fillna(False).any())))
    return _records(g.reset_index())


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _emulated_socs(a: RunAnalysis) -> set[str]:
    """The SoCs of the run with a board whose userland was emulated."""
    if not a.emulated or a.results.empty:
        return set()
    return set(a.results.loc[a.results["board"].isin(list(a.emulated)), "soc"].astype(str))


def _figures(a: RunAnalysis, out_dir: Path, dep: Deployment) -> dict[str, list[dict[str, Any]]]:
    """Every figure with its caption; ``emulated``: the figure shows timings of an emulated userland."""
    figs: dict[str, list[dict[str, Any]]] = {"throughput": [], "energy": [], "roofline": [], "coexec": [],
                                             "cross_soc": [], "deployment": []}
    socs = _emulated_socs(a)
    for board in dict.fromkeys(a.table["board"]):
        name = f"throughput-{board}.png"
        throughput_bars(a.table, board, out_dir / name)
        figs["throughput"].append({"file": name, "caption": f"Throughput of every model on every component of {board}",
                                   "emulated": board in a.emulated})
    summary = a.energy_summary
    for board in dict.fromkeys(summary.dropna(subset=["images_per_j"])["board"]):
        name = f"efficiency-{board}.png"
        efficiency_bars(summary, board, out_dir / name)
        figs["energy"].append({"file": name, "caption": f"Images per joule of active power on {board}",
                               "emulated": board in a.emulated})
    with_energy = dep.candidates.dropna(subset=["energy_per_image_j"])
    for board in dict.fromkeys(with_energy["board"]):
        name = f"pareto-{board}.png"
        simulated = bool(with_energy.loc[with_energy["board"] == board, "simulated"].any())
        pareto_plot(dep.candidates, dep.picks, board, out_dir / name, simulated)
        figs["deployment"].append({"file": name, "caption": f"Throughput against active energy per image of every "
                                   f"measured configuration on {board}, Pareto front joined",
                                   "emulated": board in a.emulated, "simulated": simulated})
    pts = a.roofline.points
    for soc in dict.fromkeys(pts["soc"]) if not pts.empty else []:
        name = f"roofline-{soc}.png"
        roofline_plot(a.roofline.roofs, pts, soc, out_dir / name)
        figs["roofline"].append({"file": name, "caption": f"Roofline of the components of {soc}",
                                 "emulated": str(soc) in socs})
    for board in dict.fromkeys(a.coexec_shares["board"]):
        name = f"coexec-{board}.png"
        coexec_share_bars(a.coexec, a.coexec_shares, board, out_dir / name)
        figs["coexec"].append({"file": name, "caption": f"Co-execution on {board}: throughput split by share",
                               "emulated": board in a.emulated})
    if not a.cross_soc.empty:
        ratio_heatmap(a.cross_soc, out_dir / "cross-soc.png")
        emulated = bool((emulation_column(a.cross_soc, "emulated_a") != "").any()
                        or (emulation_column(a.cross_soc, "emulated_b") != "").any())
        figs["cross_soc"].append({"file": "cross-soc.png", "caption": "Throughput ratio per model between SoCs "
                                  "(each row: first SoC / second)", "emulated": emulated})
    return figs


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _models(run: RunDir, results: pd.DataFrame) -> list[dict[str, Any]]:
    """The zoo entries of the models this run measured, from the manifest copied into the run (MACs, params,
    file size, source: where an added model came from; none for the zoo's built networks)."""
    path = run.path / "inputs" / "zoo-manifest.json"
    if not path.exists() or results.empty:
        return []
    used = set(zip(results["model"], results["dtype"]))
    return [m.model_dump() for m in load_manifest(path).models if (m.name, m.dtype) in used]


def write_report(run: RunDir, out_dir: Path, baseline: RunDir | None = None,
                 soc_order: list[str] | None = None, power_cap_w: float | None = None) -> Path:
    """``soc_order``: how cross-SoC ratios are taken (first / second; else the order recorded in the run, e.g.
    by ``import --soc-order``, else newer / older SoC). ``power_cap_w``: the deployment advisor's power cap."""
    out_dir = Path(out_dir)
    a = analyze_run(run, baseline)
    order = soc_order or a.meta.get("soc_order")
    if order:  # a name that is not a SoC of the run: ConfigError before anything is written
        a.cross_soc = cross_soc(a.table, order)
        a.cross_soc_summary = cross_soc_summary(a.cross_soc)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = a.meta
    results = a.results
    dep = a.deployment(power_cap_w)
    figures = _figures(a, out_dir, dep)

    export_csv(run, "results", out_dir / "results.csv", RESULTS.names)  # in job order

    failed = [r for r in run.journal_records() if r.get("state") == "failed"]
    many = len(results) > MAX_JOB_ROWS
    details = a.validity if many else job_details(run)
    details = details.head(MAX_JOB_ROWS)
    jobs = results[results["job_id"].isin(details["job_id"])].drop(columns=["verdict", "cpus", "reasons"]).merge(
        details, on="job_id", how="inner")
    jobs = jobs.drop(columns=["energy_per_image_j"], errors="ignore").merge(
        a.energy[["job_id", "active_w", "energy_per_image_j", "images_per_j", "energy_note"]], on="job_id", how="left")
    verdicts = results["verdict"].value_counts().to_dict()
    energy = a.energy_summary
    context = dict(
        run=meta,
        advice=a.advice,
        boards=_board_tables(a.table),
        models=_models(run, results),
        figures=figures,
        jobs=_records(jobs.sort_values("job_id")),
        jobs_truncated=many,
        verdicts=verdicts,
        failed=failed,
        facts=(meta.get("provision") or {}).get("facts", {}),
        has_power=bool(results["mean_power_w"].notna().any()) if not results.empty else False,
        has_temps=bool(results["temp_max_c"].notna().any()) if not results.empty else False,
        thermal=_thermal_summary(results),
        temps_simulated=bool(results["temp_simulated"].fillna(False).astype(bool).any()) if not results.empty
        else False,
        power_simulated=simulated_share(results),
        emulated=a.emulated,
        # simulated components (a modelled latency) and emulated userlands have a banner each; the marks say which
        simulated_inference={b: e for b, e in a.emulated.items() if label_of(e) == "simulated"},
        emulated_userland={b: e for b, e in a.emulated.items() if label_of(e) != "simulated"},
        emu_word=label_of(list(a.emulated.values())) or "emulated",
        not_performance=NOT_PERFORMANCE,
        idle=_records(a.idle),
        energy=_records(energy),
        energy_measures=sorted({m for m in energy["measures"].dropna()}) if not energy.empty else [],
        rails=_records(a.rails.groupby(["rail"], sort=True).agg(mean_w=("mean_w", "mean"), idle_w=("idle_w", "mean"),
                                                               active_w=("active_w", "mean")).reset_index())
        if not a.rails.empty else [],
        roofs=_records(a.roofline.roofs),
        roof_points=_records(a.roofline.points),
        roof_missing=_records(a.roofline.missing),
        quantization=_records(a.quantization),
        deployment=_records(dep.picks),
        deployment_front=_records(dep.candidates[dep.candidates["on_front"]]),
        power_cap_w=power_cap_w,
        coexec=_records(a.coexec),
        cross_soc=_records(a.cross_soc_summary),
        baseline_id=a.baseline_id,
        baseline=_records(a.baseline),
        baseline_geomean=a.baseline_geomean,
        git_revisions=sorted(str(g) for g in results["git_revision"].dropna().unique()),
        runtimes=sorted(f"{m} {v}" for m, v in results[["runtime_module", "runtime_version"]].dropna(
            subset=["runtime_module"]).drop_duplicates().itertuples(index=False)),
    )
    _write_text(out_dir / "index.html", _ENV.get_template("report.html.j2").render(**context))
    _write_text(out_dir / "summary.md", _MD.get_template("summary.md.j2").render(**context))
    return out_dir / "index.html"
