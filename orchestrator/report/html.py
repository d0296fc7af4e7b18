"""`reports/<run>/index.html` from the results store alone. Renders; computes nothing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from orchestrator.analysis.metrics import throughput_table
from orchestrator.report.plots import throughput_bars
from orchestrator.results.store import RunDir

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.report", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


_ENV.filters["fmt"] = _fmt


def _board_tables(table: pd.DataFrame) -> list[dict[str, Any]]:
    boards = []
    for board, data in table.groupby("board", sort=False):
        components = list(dict.fromkeys(data["component"]))
        rows = []
        for (model, dtype), cell_rows in data.groupby(["model_display", "dtype"], sort=False):
            cells = {r["component"]: r for r in cell_rows.to_dict("records")}
            rows.append({"model": model, "dtype": dtype, "cells": [cells.get(c) for c in components]})
        boards.append({"name": board, "soc": data["soc"].iloc[0], "components": components, "rows": rows})
    return boards


def write_report(run: RunDir, out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = run.meta
    results = run.read_table("results")
    latencies = run.read_table("latencies")
    table = throughput_table(results, latencies)

    figures = []
    for board in dict.fromkeys(table["board"]):
        name = f"throughput-{board}.png"
        throughput_bars(table, board, out_dir / name)
        figures.append({"file": name, "caption": f"Throughput of every model on every component of {board}"})

    failed = [r for r in run.journal_records() if r.get("state") == "failed"]
    results.sort_values(["board", "component", "model", "dtype", "repeat"]).drop(columns=["reasons"]).assign(
        reasons=results["reasons"].map(lambda r: "; ".join(r))
    ).to_csv(out_dir / "results.csv", index=False)

    html = _ENV.get_template("report.html.j2").render(
        run=meta,
        boards=_board_tables(table),
        figures=figures,
        jobs=results.sort_values("job_id").to_dict("records"),
        failed=failed,
        facts=(meta.get("provision") or {}).get("facts", {}),
        has_power=bool(results["mean_power_w"].notna().any()) if not results.empty else False,
    )
    index = out_dir / "index.html"
    tmp = out_dir / ".index.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(index)
    return index
