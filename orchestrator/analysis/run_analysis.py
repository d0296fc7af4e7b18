"""Everything a report shows about one run, computed once, from the store alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.analysis.advisor import Advice, advise
from orchestrator.analysis.coexec import coexec_shares, coexec_table
from orchestrator.analysis.compare import (
    baseline_comparison,
    cross_soc,
    cross_soc_summary,
    quantization_table,
)
from orchestrator.analysis.deployment import Deployment, deployment
from orchestrator.analysis.emulation import emulated_boards
from orchestrator.analysis.energy import (
    IDLE_DRIFT_LIMIT,
    RESULT_COLUMNS,
    idle_by_phase,
    is_simulated,
    run_energy,
    simulated_share,
)
from orchestrator.analysis.metrics import KEYS, throughput_table
from orchestrator.analysis.roofline import Roofline, roofline
from orchestrator.analysis.series import SOURCE_COLUMNS, with_labels, with_series
from orchestrator.analysis.tables import iter_files, read_columns
from orchestrator.results.store import RunDir

__all__ = ["RunAnalysis", "analyze_run", "REPORT_COLUMNS"]

# what the report needs of the results table (never the whole row set of columns)
REPORT_COLUMNS = list(dict.fromkeys(RESULT_COLUMNS + SOURCE_COLUMNS + [
    "model_file", "repeat", "runtime_module", "runtime_version", "git_revision", "count", "latency_p50_ms",
    "latency_p99_ms", "mean_power_w", "energy_per_image_j", "reasons", "temp_start_c", "temp_max_c",
    "cooldown_wait_s", "temp_simulated", "emulated",
]))


@dataclass
class RunAnalysis:
    meta: dict[str, Any]
    results: pd.DataFrame
    table: pd.DataFrame  # throughput per series (orchestrator.analysis.series) + labels + model_file
    energy: pd.DataFrame  # per job
    rails: pd.DataFrame  # per job and rail (sensor boards)
    roofline: Roofline
    quantization: pd.DataFrame
    coexec: pd.DataFrame
    coexec_shares: pd.DataFrame  # per co-execution configuration and member: share of the frames
    cross_soc: pd.DataFrame
    cross_soc_summary: pd.DataFrame
    validity: pd.DataFrame  # the jobs that are not VALID: job_id, cpus, verdict, reasons (joined)
    idle: pd.DataFrame = field(default_factory=pd.DataFrame)  # per board, source, rail: start and end idle
    baseline_id: str | None = None
    baseline: pd.DataFrame = field(default_factory=pd.DataFrame)
    baseline_geomean: float = float("nan")

    @cached_property
    def advice(self) -> list[Advice]:
        """What to do about this run (orchestrator.analysis.advisor)."""
        return advise(self.results, self.table, self.coexec, self.idle, simulated_share(self.results))

    def deployment(self, power_cap_w: float | None = None) -> Deployment:
        """Per board, model and dtype: the Pareto front of throughput vs energy per image over the measured
        configurations and the recommended ones (orchestrator.analysis.deployment)."""
        return deployment(self.table, self.energy_summary, power_cap_w)

    @cached_property
    def emulated(self) -> dict[str, str]:
        """Board -> what emulated its userland, for the boards whose timings are not performance figures."""
        return emulated_boards(self.results)

    @cached_property
    def energy_summary(self) -> pd.DataFrame:
        """Mean over the VALID repeats of each series of the energy figures."""
        e = self.energy[self.energy["verdict"] == "VALID"]
        keys = KEYS
        if e.empty:
            return pd.DataFrame(columns=keys + ["measures", "simulated", "mean_w", "active_w", "energy_per_image_j",
                                                "images_per_j", "energy_note", "component_label", "model_label"])
        e = e[[c for c in e.columns if c not in KEYS]].merge(self.results[["job_id"] + KEYS], on="job_id")
        e = e.assign(simulated=is_simulated(e))
        summary = (e.groupby(keys, sort=False, dropna=False)
                   .agg(measures=("measures", "first"), simulated=("simulated", "any"), mean_w=("mean_w", "mean"),
                        active_w=("active_w", "mean"), energy_per_image_j=("energy_per_image_j", "mean"),
                        clock_uncertainty_ms=("clock_uncertainty_ms", "max"))
                   .reset_index())
        # one figure, two units: images per joule is the reciprocal of the mean energy per image
        summary["images_per_j"] = 1.0 / summary["energy_per_image_j"]
        # the distinct notes of each series (few), joined: deduplicated before grouping, not per row
        notes = e.loc[e["energy_note"].fillna("") != "", keys + ["energy_note"]].drop_duplicates()
        joined = (notes.sort_values("energy_note").groupby(keys, sort=False, dropna=False)["energy_note"]
                  .agg("; ".join).reset_index())
        summary = summary.merge(joined, on=keys, how="left")
        summary["energy_note"] = summary["energy_note"].fillna("")
        return with_labels(summary)


def _with_model_file(table: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    files = results.groupby(KEYS, sort=False, dropna=False)["model_file"].first().reset_index()
    return table.merge(files, on=KEYS, how="left")


def _coexec_rows(run: RunDir) -> pd.DataFrame:
    """The co-execution rows only (filtered in Arrow: most rows of a big store are isolated runs)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = list(dict.fromkeys(SOURCE_COLUMNS + ["verdict", "coexec_members", "coexec_share_pct"]))
    parts = [t.filter(pc.greater_equal(pc.list_value_length(t["coexec_members"]), 2))
             for t in iter_files(run, "results", cols)]
    return with_series(pa.concat_tables(parts).to_pandas() if parts else pd.DataFrame(columns=cols))


def analyze_run(run: RunDir, baseline: RunDir | None = None) -> RunAnalysis:
    meta = run.meta
    results = with_series(read_columns(run, "results", REPORT_COLUMNS))
    latencies = read_columns(run, "latencies", ["job_id", "latency_ms"], categorical=["job_id"])
    table = _with_model_file(throughput_table(results, latencies), results)
    energy, rails = run_energy(run, results[RESULT_COLUMNS])
    membw = read_columns(run, "membw", ["board", "component", "kernel", "gb_per_s"])
    roof = roofline(meta, table, membw)
    quant = quantization_table(table, energy[energy["verdict"] == "VALID"])
    pairs = cross_soc(table)
    validity = job_details(run, only_invalid=True)
    shares = coexec_shares(_coexec_rows(run))
    analysis = RunAnalysis(
        meta=meta, results=results, table=table, energy=energy, rails=rails, roofline=roof,
        quantization=quant, coexec=coexec_table(table, shares), coexec_shares=shares, cross_soc=pairs,
        cross_soc_summary=cross_soc_summary(pairs),
        validity=validity, idle=idle_table(run, results),
    )
    if baseline is not None:
        b_results = with_series(read_columns(baseline, "results", REPORT_COLUMNS))
        b_lat = read_columns(baseline, "latencies", ["job_id", "latency_ms"], categorical=["job_id"])
        b_table = throughput_table(b_results, b_lat)
        analysis.baseline_id = baseline.run_id
        analysis.baseline, analysis.baseline_geomean = baseline_comparison(table, b_table)
    return analysis


def idle_table(run: RunDir, results: pd.DataFrame) -> pd.DataFrame:
    """Idle power per board, source and rail: at the start and at the end of the board's share, their drift,
    whether it exceeds ``IDLE_DRIFT_LIMIT``, and whether the board's power is simulated."""
    idle = idle_by_phase(read_columns(run, "idle", ["board", "source", "rail", "phase", "mean_power_w"]))
    if idle.empty:
        return idle.assign(drift_rel=[], drifted=[], simulated=[])
    idle["drift_rel"] = (idle["idle_end_w"] - idle["idle_w"]) / idle["idle_w"]
    idle["drifted"] = idle["drift_rel"].abs() > IDLE_DRIFT_LIMIT
    sim = results.assign(s=is_simulated(results)).groupby("board")["s"].any()
    idle["simulated"] = idle["board"].map(sim).fillna(False).astype(bool)
    return idle.sort_values(["board", "source", "rail"]).reset_index(drop=True)


def job_details(run: RunDir, only_invalid: bool = False) -> pd.DataFrame:
    """job_id, cpus (joined), verdict and reasons (joined), read through Arrow; only the non-VALID jobs
    when ``only_invalid`` (cheap on a store of 10^6 jobs)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from orchestrator.analysis.tables import iter_files

    parts = []
    for t in iter_files(run, "results", ["job_id", "cpus", "verdict", "reasons"]):
        if only_invalid:
            t = t.filter(pc.fill_null(pc.not_equal(t.column("verdict"), "VALID"), True))
        if t.num_rows:
            parts.append(t)
    if not parts:
        return pd.DataFrame({"job_id": pd.Series(dtype=str), "cpus": pd.Series(dtype=str),
                             "verdict": pd.Series(dtype=str), "reasons": pd.Series(dtype=str)})
    t = pa.concat_tables(parts)
    t = t.set_column(1, "cpus", pc.fill_null(pc.binary_join(t.column("cpus").cast(pa.list_(pa.string())), ","), ""))
    t = t.set_column(3, "reasons", pc.fill_null(pc.binary_join(t.column("reasons"), "; "), ""))
    return t.to_pandas().sort_values("job_id").reset_index(drop=True)


def finite(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and np.isnan(x))
